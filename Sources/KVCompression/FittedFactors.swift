import LinearAlgebra
import Quantization

/// Settings of the `fitted` training (DESIGN.md §4, "Low-rank factors").
public struct FittingOptions: Sendable, Hashable {
    /// Maximum number of training steps.
    public var steps: Int
    /// Step-size halvings tried before a step is given up (training then stops: no step decreases the loss).
    public var maxBacktracks: Int
    /// Tikhonov term of the least-squares solve for B, relative to the mean diagonal of ĈᵀĈ.
    public var ridge: Double

    /// Options; the defaults suit layers of a few hundred channels and a few hundred sampled tokens.
    public init(steps: Int = 100, maxBacktracks: Int = 12, ridge: Double = 1e-7) {
        self.steps = steps
        self.maxBacktracks = maxBacktracks
        self.ridge = ridge
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
    /// ‖K − Q_b(X Aᵀ) Bᵀ‖²_F on the sampled rows: entry 0 at the start (the initial basis followed by
    /// post-training quantization), then one entry per accepted step; strictly decreasing after entry 0
    /// and never above it.
    public let lossHistory: [Double]
    /// ‖K‖²_F on the sampled rows.
    public let targetNormSquared: Double

    /// e_kv = √loss/‖K‖_F after `step` accepted steps (0: the starting point).
    public func relativeError(step: Int) -> Double {
        let i = min(max(step, 0), lossHistory.count - 1)
        return targetNormSquared > 0 ? (lossHistory[i] / targetNormSquared).squareRoot() : 0
    }

    /// e_kv of the starting point (initial projection basis + PTQ).
    public var initialRelativeError: Double { relativeError(step: 0) }
    /// e_kv after training.
    public var finalRelativeError: Double { relativeError(step: lossHistory.count - 1) }
}

/// Trains `fitted` factors: A and B minimizing ‖K − Q_b(X Aᵀ) Bᵀ‖²_F with the quantizer in the loop
/// (DESIGN.md §4, "Low-rank factors", `fitted`).
///
/// Start: A = U_rᵀW, B = U_r from `start` (normally `activations`). Each step solves B in closed form
/// (least squares given the quantized features Ĉ = Q_b(X Aᵀ)), then moves A along the straight-through
/// gradient ∂/∂A = 2·((ĈBᵀ − K)B)ᵀX, treating Q_b as the identity in the backward pass. A candidate is
/// accepted only when its loss is below the current one; otherwise the step size is quartered and
/// retried (backtracking), so the recorded loss decreases monotonically. After an accepted step the
/// step size doubles. Training stops after `options.steps` steps or when no step size helps.
///
/// - Parameters:
///   - weight: W, [d_kv, d].
///   - inputs: sampled rows X of the layer input, [s, d].
///   - targets: the same tokens' K (or V), [s, d_kv]; nil computes K = X Wᵀ.
///   - start: the projection basis to start from.
///   - rank: r in 1...d_kv.
///   - bits: 2...8, or 16 for no quantizer.
///   - groupSize: group along the r channels of a token (nil: one group per token).
/// - Throws: ``KVCompressionError/invalidArgument(_:)`` on shapes, rank or bits;
///   ``KVCompressionError/cancelled``; wrapped LinearAlgebra / Quantization errors.
public func fitFactors(weight: Matrix, inputs: Matrix, targets: Matrix? = nil, start: ProjectionBasis,
                       rank: Int, bits: Int, groupSize: Int?, options: FittingOptions = FittingOptions(),
                       cancellation: CancellationFlag? = nil) throws -> FittedFactors {
    guard inputs.cols == weight.cols, start.dimension == weight.rows else {
        throw KVCompressionError.invalidArgument(
            "X is \(inputs.rows)x\(inputs.cols), W is \(weight.rows)x\(weight.cols), basis \(start.dimension)")
    }
    guard rank >= 1, rank <= weight.rows else {
        throw KVCompressionError.invalidArgument("rank \(rank) outside 1...\(weight.rows)")
    }
    let k = try targets ?? KVCompressionError.wrap { try matmul(inputs, .none, weight, .transpose) }
    guard k.rows == inputs.rows, k.cols == weight.rows else {
        throw KVCompressionError.invalidArgument("K is \(k.rows)x\(k.cols), want \(inputs.rows)x\(weight.rows)")
    }
    let quantizer: UniformQuantizer? = bits == 16 ? nil : try KVCompressionError.wrap {
        try UniformQuantizer(bits: bits, groupSize: groupSize)
    }
    let problem = FittingProblem(x: inputs, k: k, quantizer: quantizer, rank: rank, ridge: options.ridge)

    var factors = try start.factors(rank: rank, weight: weight)
    var a = factors.a, b = factors.b
    var features = try problem.features(a)
    var state = try problem.evaluate(features, b)
    var history = [state.loss]
    // Step size from the Lipschitz constant of the unquantized loss in A: 2·λmax(BᵀB)·λmax(XᵀX).
    let curvature = 2 * largestEigenvalueOfGram(b) * largestEigenvalueOfGram(inputs)
    var stepSize = curvature > 0 ? 1 / curvature : 1

    for _ in 0..<max(options.steps, 0) {
        try CancellationFlag.check(cancellation)
        var improved = false
        // B in closed form given the quantized features.
        let solved = try problem.solveB(features)
        let withSolved = try problem.evaluate(features, solved)
        if withSolved.loss < state.loss {
            b = solved
            state = withSolved
            improved = true
        }
        // A along the straight-through gradient, with backtracking.
        let gradient = try problem.gradient(residual: state.residual, b: b)
        for _ in 0...max(options.maxBacktracks, 0) {
            var candidate = a
            candidate.withUnsafeMutableBufferPointer { p in
                gradient.withUnsafeBufferPointer { g in
                    let eta = Float(stepSize)
                    for i in 0..<p.count { p[i] -= eta * g[i] }
                }
            }
            let candidateFeatures = try problem.features(candidate)
            let candidateB = try problem.solveB(candidateFeatures)
            let evaluated = try problem.evaluate(candidateFeatures, candidateB)
            if evaluated.loss < state.loss {
                (a, b, features, state) = (candidate, candidateB, candidateFeatures, evaluated)
                stepSize *= 2
                improved = true
                break
            }
            stepSize *= 0.25
        }
        guard improved else { break }
        history.append(state.loss)
    }
    factors = try LowRankFactors(a: a, b: b)
    return FittedFactors(factors: factors, bits: bits, groupSize: groupSize, lossHistory: history,
                         targetNormSquared: k.frobeniusNormSquared)
}

/// The data and operators of one `fitted` problem.
struct FittingProblem {
    let x: Matrix
    let k: Matrix
    let quantizer: UniformQuantizer?
    let rank: Int
    let ridge: Double

    struct Evaluation {
        let loss: Double
        /// K − Ĉ Bᵀ, [s, d_kv].
        let residual: Matrix
    }

    /// Ĉ = Q_b(X Aᵀ), quantized per token in groups along the r channels.
    func features(_ a: Matrix) throws -> Matrix {
        var c = try KVCompressionError.wrap { try matmul(x, .none, a, .transpose) }
        if let quantizer, c.rows > 0 {
            try c.withUnsafeMutableBufferPointer { p in
                try KVCompressionError.wrap { try quantizer.fakeQuantize(p, rowLength: rank) }
            }
        }
        return c
    }

    /// The loss ‖K − Ĉ Bᵀ‖² and its residual.
    func evaluate(_ c: Matrix, _ b: Matrix) throws -> Evaluation {
        var residual = k
        try KVCompressionError.wrap { try gemm(c, .none, b, .transpose, alpha: -1, beta: 1, into: &residual) }
        return Evaluation(loss: residual.frobeniusNormSquared, residual: residual)
    }

    /// ∂loss/∂A through the straight-through estimator: −2 (R B)ᵀ X with R = K − Ĉ Bᵀ.
    func gradient(residual: Matrix, b: Matrix) throws -> Matrix {
        try KVCompressionError.wrap {
            let rb = try matmul(residual, .none, b, .none)
            var g = Matrix(rows: rank, cols: x.cols)
            try gemm(rb, .transpose, x, .none, alpha: -2, into: &g)
            return g
        }
    }

    /// B = argmin ‖K − Ĉ Bᵀ‖²: Bᵀ = (ĈᵀĈ + λI)⁻¹ ĈᵀK, solved by Cholesky in Double.
    func solveB(_ c: Matrix) throws -> Matrix {
        let (gram, rhs) = try KVCompressionError.wrap { (try matmul(c, .transpose, c, .none), try matmul(c, .transpose, k, .none)) }
        let r = rank, n = k.cols
        var m = gram.storage.map(Double.init)
        var meanDiagonal = 0.0
        for i in 0..<r { meanDiagonal += m[i * r + i] }
        meanDiagonal = max(meanDiagonal / Double(max(r, 1)), Double.leastNormalMagnitude)
        var lambda = ridge * meanDiagonal
        var factor: [Double]?
        for _ in 0..<8 {
            for i in 0..<r { m[i * r + i] = Double(gram.storage[i * r + i]) + lambda }
            factor = choleskyLower(m, r)
            if factor != nil { break }
            lambda = max(lambda * 100, 1e-12 * meanDiagonal)
        }
        guard let l = factor else {
            throw KVCompressionError.invalidArgument("least-squares system for B is not positive definite")
        }
        // Solve L Lᵀ Y = rhs (Y = Bᵀ, r × n), column by column.
        var y = rhs.storage.map(Double.init)
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

/// λmax(MᵀM) by power iteration (an estimate from below, good to a few percent; used for step sizes).
func largestEigenvalueOfGram(_ m: Matrix) -> Double {
    guard m.rows > 0, m.cols > 0 else { return 0 }
    var v = [Float](repeating: 1 / Float(m.cols).squareRoot(), count: m.cols)
    var estimate = 0.0
    for _ in 0..<30 {
        guard let mv = try? matvec(m, .none, v), let w = try? matvec(m, .transpose, mv) else { return 0 }
        let norm = w.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard norm > 0 else { return 0 }
        estimate = norm
        v = w.map { Float(Double($0) / norm) }
    }
    return estimate
}
