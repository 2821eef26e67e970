import Foundation
import LinearAlgebra
import Quantization

/// Settings of the `fitted` training (DESIGN.md §4, "Low-rank factors").
public struct FittingOptions: Sendable, Hashable {
    /// Adam steps on A.
    public var steps: Int
    /// Adam's step size at the start, relative to the root-mean-square entry of the starting A; it decays
    /// to 0 along a cosine schedule.
    public var learningRate: Double
    /// Sampled training rows per Adam step (a mini-batch; all training rows when larger).
    public var batchRows: Int
    /// The loss is evaluated (and the best factors kept) every this many Adam steps.
    public var evaluationInterval: Int
    /// Fraction of the sampled rows held out (every ⌈1/f⌉-th row) to measure generalization and choose
    /// the step count; 0 trains and selects on all rows.
    public var validationFraction: Double
    /// Whether to try feature equalization after the Adam steps: A ← SA, B ← BS⁻¹ with S = diag(1/rms(c_i)), which
    /// leaves XAᵀBᵀ unchanged but gives every feature channel the same range before quantization.
    public var equalizeFeatures: Bool
    /// Tikhonov term of the least-squares solve for B, relative to the mean diagonal of its normal matrix.
    public var ridge: Double
    /// Seed of the mini-batch order.
    public var seed: UInt64

    /// Options; the defaults suit layers of a few hundred channels and a few hundred sampled tokens.
    public init(steps: Int = 200, learningRate: Double = 1e-2, batchRows: Int = 128, evaluationInterval: Int = 5,
                validationFraction: Double = 0.25, equalizeFeatures: Bool = true, ridge: Double = 1e-7, seed: UInt64 = 0) {
        self.steps = steps
        self.learningRate = learningRate
        self.batchRows = batchRows
        self.evaluationInterval = evaluationInterval
        self.validationFraction = validationFraction
        self.equalizeFeatures = equalizeFeatures
        self.ridge = ridge
        self.seed = seed
    }
}

/// The result of training `fitted` factors for one layer, K or V, rank and bit-width.
public struct FittedFactors: Sendable {
    /// The trained A [r, d] and B [d_kv, r].
    public let factors: LowRankFactors
    /// Bits of the compressed branch the training used (16: no quantizer).
    public let bits: Int
    /// Group size along the r feature channels (nil: one group per token).
    public let groupSize: Int?
    /// The training loss ‖K − Q_b(X Aᵀ) Bᵀ‖²: entry 0 at the start (the initial basis followed by
    /// post-training quantization), then one entry per accepted improvement (best so far), up to the
    /// one the returned factors come from; strictly decreasing. With an input Gram it is the hybrid
    /// estimate over all calibration tokens (see ``fitFactors(weight:inputs:targets:start:rank:bits:groupSize:inputGram:options:cancellation:)``).
    public let lossHistory: [Double]
    /// The Adam step after which each entry of ``lossHistory`` was reached (0: the start; steps + 1: the
    /// final feature equalization).
    public let stepOfEntry: [Int]
    /// ‖K‖² the training loss is relative to.
    public let targetNormSquared: Double
    /// ‖K_h − Q_b(X_h Aᵀ) Bᵀ‖² on the held-out rows at each entry of ``lossHistory`` (empty without a split).
    public let heldOutHistory: [Double]
    /// ‖K_h‖² on the held-out rows.
    public let heldOutNormSquared: Double

    /// e_kv = √loss/‖K‖ after `step` accepted improvements (0: the starting point).
    public func relativeError(step: Int) -> Double {
        let i = min(max(step, 0), lossHistory.count - 1)
        return targetNormSquared > 0 ? (lossHistory[i] / targetNormSquared).squareRoot() : 0
    }

    /// e_kv on the held-out rows at entry `step` (nil without a split).
    public func heldOutRelativeError(step: Int) -> Double? {
        guard !heldOutHistory.isEmpty else { return nil }
        let i = min(max(step, 0), heldOutHistory.count - 1)
        return heldOutNormSquared > 0 ? (heldOutHistory[i] / heldOutNormSquared).squareRoot() : 0
    }

    /// e_kv of the starting point (initial projection basis + PTQ).
    public var initialRelativeError: Double { relativeError(step: 0) }
    /// e_kv of the returned factors.
    public var finalRelativeError: Double { relativeError(step: lossHistory.count - 1) }
}

/// Trains `fitted` factors: A and B minimizing ‖K − Q_b(X Aᵀ) Bᵀ‖²_F with the quantizer in the loop
/// (DESIGN.md §4, "Low-rank factors", `fitted`).
///
/// Start: A = U_rᵀW, B = U_r from `start` (normally `activations`): entry 0 of the history is that
/// basis followed by post-training quantization. Then:
/// 1. Adam on A along the straight-through gradient ∂/∂A = −2((K − ĈBᵀ)B)ᵀX over mini-batches (Q_b
///    is the identity in the backward pass), learning rate on a cosine schedule; after each step B is
///    solved in closed form (least squares given the quantized features Ĉ = Q_b(XAᵀ) of all training rows).
///    Every ``FittingOptions/evaluationInterval`` steps the training loss is measured, and the factors
///    are kept only when it is the best so far, so the recorded loss decreases monotonically;
/// 2. feature equalization (``FittingOptions/equalizeFeatures``) of the best factors: rows of A scaled to
///    equal feature RMS, B re-solved; accepted only if the loss drops.
///
/// Training loss: without `inputGram`, ‖K_t − Q_b(X_tAᵀ)Bᵀ‖² on the training rows. With the input Gram
/// XᵀX of all calibration tokens it is the hybrid estimate the error tables use, with the unquantized
/// part exact over all tokens and only the quantization increment from the sampled rows:
/// ‖K − XAᵀBᵀ‖²_Gram + ‖K‖²/‖K_t‖² · (‖K_t − Ĉ_tBᵀ‖² − ‖K_t − C_tBᵀ‖²), with K = XWᵀ; B then solves
/// the matching normal equations. This keeps B from over-fitting a few hundred rows.
///
/// When ``FittingOptions/validationFraction`` > 0, the held-out rows (never trained on) are evaluated at
/// every accepted entry, and the history is cut after the entry with the lowest held-out loss: the
/// step count is chosen on data the factors were not fitted to.
///
/// - Parameters:
///   - weight: W, [d_kv, d] (same channel order as `targets`).
///   - inputs: sampled rows X of the layer input, [s, d].
///   - targets: the same tokens' K (or V), [s, d_kv]; nil computes K = X Wᵀ.
///   - start: the projection basis to start from.
///   - rank: r in 1...d_kv.
///   - bits: 2...8, or 16 for no quantizer.
///   - groupSize: group along the r channels of a token (nil: one group per token).
///   - inputGram: XᵀX [d, d] over all calibration tokens, or nil (sampled rows only).
/// - Throws: ``KVCompressionError/invalidArgument(_:)`` on shapes, rank or bits;
///   ``KVCompressionError/cancelled``; wrapped LinearAlgebra / Quantization errors.
public func fitFactors(weight: Matrix, inputs: Matrix, targets: Matrix? = nil, start: ProjectionBasis,
                       rank: Int, bits: Int, groupSize: Int?, inputGram: Matrix? = nil,
                       options: FittingOptions = FittingOptions(),
                       cancellation: CancellationFlag? = nil) throws -> FittedFactors {
    guard inputs.cols == weight.cols, start.dimension == weight.rows else {
        throw KVCompressionError.invalidArgument(
            "X is \(inputs.rows)x\(inputs.cols), W is \(weight.rows)x\(weight.cols), basis \(start.dimension)")
    }
    guard rank >= 1, rank <= weight.rows else {
        throw KVCompressionError.invalidArgument("rank \(rank) outside 1...\(weight.rows)")
    }
    if let m = inputGram, m.rows != weight.cols || m.cols != weight.cols {
        throw KVCompressionError.invalidArgument("XᵀX is \(m.rows)x\(m.cols), W has \(weight.cols) columns")
    }
    let k = try targets ?? KVCompressionError.wrap { try matmul(inputs, .none, weight, .transpose) }
    guard k.rows == inputs.rows, k.cols == weight.rows else {
        throw KVCompressionError.invalidArgument("K is \(k.rows)x\(k.cols), want \(inputs.rows)x\(weight.rows)")
    }
    guard inputs.rows > 0 else { throw KVCompressionError.invalidArgument("no sampled rows to fit on") }
    let quantizer: UniformQuantizer? = bits == 16 ? nil : try KVCompressionError.wrap {
        try UniformQuantizer(bits: bits, groupSize: groupSize)
    }

    // Training / held-out split: every `period`-th row is held out.
    let fraction = min(max(options.validationFraction, 0), 0.5)
    let period = fraction > 0 ? max(2, Int((1 / fraction).rounded(.up))) : 0
    let heldOutRows = period > 0 && inputs.rows >= 2 * period ? Array(stride(from: period - 1, to: inputs.rows, by: period)) : []
    let heldOutSet = Set(heldOutRows)
    let trainingRows = (0..<inputs.rows).filter { !heldOutSet.contains($0) }
    let problem = try FittingProblem(x: inputs.selectingRows(trainingRows), k: k.selectingRows(trainingRows),
                                     weight: weight, inputGram: inputGram, quantizer: quantizer, rank: rank, ridge: options.ridge)
    let heldOut = heldOutRows.isEmpty ? nil : try FittingProblem(
        x: inputs.selectingRows(heldOutRows), k: k.selectingRows(heldOutRows), weight: weight, inputGram: nil,
        quantizer: quantizer, rank: rank, ridge: options.ridge)

    let initial = try start.factors(rank: rank, weight: weight)
    var current = (a: initial.a, b: initial.b)
    var bestLoss = try problem.loss(a: current.a, b: current.b)
    var history = [bestLoss], steps = [0], snapshots = [current]
    var heldOutHistory = try heldOut.map { [try $0.loss(a: current.a, b: current.b)] } ?? []
    func accept(_ a: Matrix, _ b: Matrix, loss: Double, step: Int) throws {
        bestLoss = loss
        history.append(loss)
        steps.append(step)
        snapshots.append((a, b))
        if let heldOut { heldOutHistory.append(try heldOut.loss(a: a, b: b)) }
    }

    // B in closed form for the starting A (the start itself uses B = U_r).
    if let b = try problem.solveB(current.a) {
        let loss = try problem.loss(a: current.a, b: b)
        if loss < bestLoss {
            try accept(current.a, b, loss: loss, step: 0)
            current.b = b
        }
    }

    // Adam on A with the straight-through gradient; B in closed form after every step. An evaluation
    // that does not improve on the best loss sends A back to the best factors, halves the step size and
    // restarts Adam's moments.
    let scale = (current.a.frobeniusNormSquared / Double(max(current.a.storage.count, 1))).squareRoot()
    var m = [Double](repeating: 0, count: current.a.storage.count), v = m
    let (beta1, beta2, epsilon) = (0.9, 0.999, 1e-30)
    var generator = SeededGenerator(seed: options.seed)
    var order = Array(0..<problem.x.rows)
    var cursor = order.count
    let batch = max(1, min(options.batchRows, order.count))
    let totalSteps = max(options.steps, 0)
    let interval = max(options.evaluationInterval, 1)
    var rateFactor = 1.0, adamStep = 0
    for step in stride(from: 1, through: totalSteps, by: 1) {
        try CancellationFlag.check(cancellation)
        if cursor + batch > order.count {
            order.shuffle(using: &generator)
            cursor = 0
        }
        let rows = Array(order[cursor..<(cursor + batch)])
        cursor += batch
        let gradient = try problem.gradient(a: current.a, b: current.b, batch: rows)
        adamStep += 1
        let rate = options.learningRate * rateFactor * scale * 0.5 * (1 + cos(Double.pi * Double(step - 1) / Double(totalSteps)))
        let c1 = 1 - pow(beta1, Double(adamStep)), c2 = 1 - pow(beta2, Double(adamStep))
        current.a.withUnsafeMutableBufferPointer { a in
            gradient.withUnsafeBufferPointer { g in
                for i in 0..<a.count {
                    let gi = Double(g[i])
                    m[i] = beta1 * m[i] + (1 - beta1) * gi
                    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                    a[i] -= Float(rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon))
                }
            }
        }
        if let b = try problem.solveB(current.a) { current.b = b }
        if step % interval == 0 || step == totalSteps {
            let loss = try problem.loss(a: current.a, b: current.b)
            if loss < bestLoss {
                try accept(current.a, current.b, loss: loss, step: step)
            } else {
                current = snapshots[snapshots.count - 1]
                rateFactor *= 0.5
                adamStep = 0
                for i in m.indices { m[i] = 0; v[i] = 0 }
            }
        }
    }

    // Feature equalization of the best factors so far (the unquantized product is unchanged).
    if options.equalizeFeatures, bits != 16 {
        try CancellationFlag.check(cancellation)
        let a = try problem.equalized(snapshots[snapshots.count - 1].a)
        if let b = try problem.solveB(a) {
            let loss = try problem.loss(a: a, b: b)
            if loss < bestLoss {
                try accept(a, b, loss: loss, step: totalSteps + 1)
            }
        }
    }

    // Choose the step count on the held-out rows: cut the history after its best held-out entry.
    var chosen = history.count - 1
    if !heldOutHistory.isEmpty, let minimum = heldOutHistory.indices.min(by: { heldOutHistory[$0] < heldOutHistory[$1] }) {
        chosen = minimum
    }
    let factors = try LowRankFactors(a: snapshots[chosen].a, b: snapshots[chosen].b)
    return FittedFactors(factors: factors, bits: bits, groupSize: groupSize, lossHistory: Array(history[0...chosen]),
                         stepOfEntry: Array(steps[0...chosen]), targetNormSquared: problem.targetNormSquared,
                         heldOutHistory: heldOutHistory.isEmpty ? [] : Array(heldOutHistory[0...chosen]),
                         heldOutNormSquared: heldOut?.targetNormSquared ?? 0)
}

/// The data and operators of one `fitted` problem (see ``fitFactors(weight:inputs:targets:start:rank:bits:groupSize:inputGram:options:cancellation:)``).
struct FittingProblem {
    /// Sampled rows X_t [s, d] and their K_t [s, d_kv].
    let x: Matrix
    let k: Matrix
    let quantizer: UniformQuantizer?
    let rank: Int
    let ridge: Double
    /// With an input Gram M = XᵀX over all tokens: M, P = M Wᵀ [d, d_kv], and ‖K‖² = trace(W M Wᵀ).
    let gram: (m: Matrix, p: Matrix, normSquared: Double)?
    /// ‖K_t‖².
    let sampleNormSquared: Double

    init(x: Matrix, k: Matrix, weight: Matrix, inputGram: Matrix?, quantizer: UniformQuantizer?, rank: Int, ridge: Double) throws {
        self.x = x
        self.k = k
        self.quantizer = quantizer
        self.rank = rank
        self.ridge = ridge
        sampleNormSquared = k.frobeniusNormSquared
        if let m = inputGram {
            let p = try KVCompressionError.wrap { try matmul(m, .none, weight, .transpose) }
            var trace = 0.0
            weight.withUnsafeBufferPointer { w in
                p.withUnsafeBufferPointer { pp in
                    let (n, d) = (weight.rows, weight.cols)
                    for i in 0..<n { for j in 0..<d { trace += Double(w[i * d + j]) * Double(pp[j * n + i]) } }
                }
            }
            gram = (m, p, trace)
        } else {
            gram = nil
        }
    }

    /// The norm the loss is relative to: ‖K‖² over all tokens (hybrid) or ‖K_t‖².
    var targetNormSquared: Double { gram?.normSquared ?? sampleNormSquared }
    /// Weight of the sampled quantization increment in the hybrid loss: ‖K‖²/‖K_t‖².
    var sampleWeight: Double { gram.map { sampleNormSquared > 0 ? $0.normSquared / sampleNormSquared : 0 } ?? 1 }

    /// C = X Aᵀ (unquantized) and Ĉ = Q_b(C), quantized per token in groups along the r channels.
    func features(_ a: Matrix, rows x: Matrix) throws -> (exact: Matrix, quantized: Matrix) {
        let c = try KVCompressionError.wrap { try matmul(x, .none, a, .transpose) }
        var q = c
        if let quantizer, q.rows > 0 {
            try q.withUnsafeMutableBufferPointer { p in
                try KVCompressionError.wrap { try quantizer.fakeQuantize(p, rowLength: rank) }
            }
        }
        return (c, q)
    }

    /// The training loss (sample-only or hybrid, see ``fitFactors``).
    func loss(a: Matrix, b: Matrix) throws -> Double {
        let (c, q) = try features(a, rows: x)
        let quantized = try residualNormSquared(k, q, b)
        guard let gram else { return quantized }
        let exact = try residualNormSquared(k, c, b)
        // ‖K − XAᵀBᵀ‖² over all tokens = ‖K‖² − 2 tr(Bᵀ·(A P)ᵀ... ) + tr(BᵀB · A M Aᵀ), from the Gram.
        let (am, ap) = try KVCompressionError.wrap { (try matmul(a, .none, gram.m, .none), try matmul(a, .none, gram.p, .none)) }
        let amat = try KVCompressionError.wrap { try matmul(am, .none, a, .transpose) }   // A M Aᵀ [r, r]
        let btb = try KVCompressionError.wrap { try matmul(b, .transpose, b, .none) }      // BᵀB [r, r]
        var cross = 0.0, quadratic = 0.0
        // tr(B · A P) = Σ_ij B[i,j] (AP)[j,i]; tr(BᵀB · AMAᵀ) = Σ_ij (BᵀB)[i,j] (AMAᵀ)[j,i].
        let (n, r) = (b.rows, rank)
        for i in 0..<n { for j in 0..<r { cross += Double(b[i, j]) * Double(ap[j, i]) } }
        for i in 0..<r { for j in 0..<r { quadratic += Double(btb[i, j]) * Double(amat[j, i]) } }
        let unquantized = max(gram.normSquared - 2 * cross + quadratic, 0)
        return unquantized + sampleWeight * (quantized - exact)
    }

    /// ‖K − C Bᵀ‖².
    func residualNormSquared(_ k: Matrix, _ c: Matrix, _ b: Matrix) throws -> Double {
        var residual = k
        try KVCompressionError.wrap { try gemm(c, .none, b, .transpose, alpha: -1, beta: 1, into: &residual) }
        return residual.frobeniusNormSquared
    }

    /// The straight-through gradient of the loss in A on a mini-batch of training rows.
    ///
    /// Sample-only: −2 (R̂ B)ᵀ X_b · (s/|b|) with R̂ = K_b − Ĉ_b Bᵀ. Hybrid: the exact gradient of the
    /// Gram term, −2 (Bᵀ Pᵀ − BᵀB A M), plus the batch's straight-through gradient of the
    /// quantization increment, −2 ‖K‖²/‖K_b‖² · ((R̂ − R) B)ᵀ X_b with R = K_b − C_b Bᵀ.
    func gradient(a: Matrix, b: Matrix, batch: [Int]) throws -> Matrix {
        let xb = x.selectingRows(batch), kb = k.selectingRows(batch)
        let (c, q) = try features(a, rows: xb)
        return try KVCompressionError.wrap {
            var g = Matrix(rows: rank, cols: x.cols)
            guard let gram else {
                var residual = kb
                try gemm(q, .none, b, .transpose, alpha: -1, beta: 1, into: &residual)
                let rb = try matmul(residual, .none, b, .none)
                try gemm(rb, .transpose, xb, .none, alpha: Float(-2 * Double(x.rows) / Double(max(batch.count, 1))), into: &g)
                return g
            }
            // R̂ − R = (C − Ĉ) Bᵀ.
            var difference = c
            difference.withUnsafeMutableBufferPointer { d in
                q.withUnsafeBufferPointer { qq in for i in 0..<d.count { d[i] -= qq[i] } }
            }
            let rb = try matmul(try matmul(difference, .none, b, .transpose), .none, b, .none)
            let batchNorm = kb.frobeniusNormSquared
            let weight = batchNorm > 0 ? gram.normSquared / batchNorm : 0
            try gemm(rb, .transpose, xb, .none, alpha: Float(-2 * weight), into: &g)
            // −2 (Bᵀ Pᵀ − BᵀB A M): Bᵀ Pᵀ = (P B)ᵀ.
            let btb = try matmul(b, .transpose, b, .none)
            let am = try matmul(a, .none, gram.m, .none)
            try gemm(b, .transpose, gram.p, .transpose, alpha: -2, beta: 1, into: &g)
            try gemm(btb, .none, am, .none, alpha: 2, beta: 1, into: &g)
            return g
        }
    }

    /// A with each row scaled so that every feature channel has the same RMS (geometric mean scale 1).
    func equalized(_ a: Matrix) throws -> Matrix {
        let r = rank, d = a.cols
        var meanSquares = [Double](repeating: 0, count: r)
        if let gram {
            let amat = try KVCompressionError.wrap { try matmul(try matmul(a, .none, gram.m, .none), .none, a, .transpose) }
            for i in 0..<r { meanSquares[i] = Double(amat[i, i]) }
        } else {
            let c = try features(a, rows: x).exact
            c.withUnsafeBufferPointer { p in
                for t in 0..<c.rows { for i in 0..<r { meanSquares[i] += Double(p[t * r + i]) * Double(p[t * r + i]) } }
            }
        }
        let positive = meanSquares.filter { $0 > 0 }
        guard positive.count == r else { return a }
        let logMean = positive.reduce(0) { $0 + log($1) } / Double(r)
        var out = a
        out.withUnsafeMutableBufferPointer { p in
            for i in 0..<r {
                let s = Float(exp(0.5 * (logMean - log(meanSquares[i]))))
                for j in 0..<d { p[i * d + j] *= s }
            }
        }
        return out
    }

    /// B = argmin of the loss for fixed A: Bᵀ = N⁻¹ Y with N = ĈᵀĈ, Y = ĈᵀK (sample-only) or
    /// N = A M Aᵀ + w(ĈᵀĈ − CᵀC), Y = A P + w(Ĉ − C)ᵀK (hybrid, w = ‖K‖²/‖K_t‖²); Cholesky in Double
    /// with a ridge. Nil when N stays indefinite.
    func solveB(_ a: Matrix) throws -> Matrix? {
        let (c, q) = try features(a, rows: x)
        let r = rank, n = k.cols
        var normal: [Double], rhs: [Double]
        let qtq = try KVCompressionError.wrap { try matmul(q, .transpose, q, .none) }
        let qtk = try KVCompressionError.wrap { try matmul(q, .transpose, k, .none) }
        if let gram {
            let w = sampleWeight
            let amat = try KVCompressionError.wrap { try matmul(try matmul(a, .none, gram.m, .none), .none, a, .transpose) }
            let ap = try KVCompressionError.wrap { try matmul(a, .none, gram.p, .none) }
            let ctc = try KVCompressionError.wrap { try matmul(c, .transpose, c, .none) }
            let ctk = try KVCompressionError.wrap { try matmul(c, .transpose, k, .none) }
            normal = (0..<(r * r)).map { Double(amat.storage[$0]) + w * (Double(qtq.storage[$0]) - Double(ctc.storage[$0])) }
            rhs = (0..<(r * n)).map { Double(ap.storage[$0]) + w * (Double(qtk.storage[$0]) - Double(ctk.storage[$0])) }
        } else {
            normal = qtq.storage.map(Double.init)
            rhs = qtk.storage.map(Double.init)
        }
        var meanDiagonal = 0.0
        for i in 0..<r { meanDiagonal += normal[i * r + i] }
        meanDiagonal = max(meanDiagonal / Double(max(r, 1)), Double.leastNormalMagnitude)
        let diagonal = (0..<r).map { normal[$0 * r + $0] }
        var lambda = ridge * meanDiagonal
        var factor: [Double]?
        for _ in 0..<8 {
            for i in 0..<r { normal[i * r + i] = diagonal[i] + lambda }
            factor = choleskyLower(normal, r)
            if factor != nil { break }
            lambda = max(lambda * 100, 1e-12 * meanDiagonal)
        }
        guard let l = factor else { return nil }
        // Solve L Lᵀ Y = rhs (Y = Bᵀ, r × n), column by column.
        var y = rhs
        for col in 0..<n {
            for i in 0..<r {
                var s = y[i * n + col]
                for j in 0..<i { s -= l[i * r + j] * y[j * n + col] }
                y[i * n + col] = s / l[i * r + i]
            }
            for i in stride(from: r - 1, through: 0, by: -1) {
                var s = y[i * n + col]
                for j in (i + 1)..<r { s -= l[j * r + i] * y[j * n + col] }
                y[i * n + col] = s / l[i * r + i]
            }
        }
        var b = Matrix(rows: n, cols: r)
        b.withUnsafeMutableBufferPointer { p in
            for i in 0..<r {
                for j in 0..<n { p[j * r + i] = Float(y[i * n + j]) }
            }
        }
        return b
    }
}

extension Matrix {
    /// The rows at `indices`, in that order.
    func selectingRows(_ indices: [Int]) -> Matrix {
        var out = Matrix(rows: indices.count, cols: cols)
        let c = cols
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (o, i) in indices.enumerated() {
                    for j in 0..<c { dst[o * c + j] = src[i * c + j] }
                }
            }
        }
        return out
    }
}

/// The lower Cholesky factor of a symmetric r×r matrix (row-major), or nil when it is not positive definite.
func choleskyLower(_ a: [Double], _ r: Int) -> [Double]? {
    var l = [Double](repeating: 0, count: r * r)
    for i in 0..<r {
        for j in 0...i {
            var s = a[i * r + j]
            for p in 0..<j { s -= l[i * r + p] * l[j * r + p] }
            if i == j {
                guard s > 0, s.isFinite else { return nil }
                l[i * r + i] = s.squareRoot()
            } else {
                l[i * r + j] = s / l[j * r + j]
            }
        }
    }
    return l
}
