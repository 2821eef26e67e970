/// Rank and bit-width of one compressed branch (K or V of a layer).
public struct BranchSetting: Sendable, Hashable, Codable {
    /// r, the features kept per token (1…d_kv; d_kv means no low-rank).
    public let rank: Int
    /// b, bits of the compressed branch: 2…8, or 16 for fp16 (no quantization, no metadata).
    public let bits: Int

    /// A checked setting.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for a negative rank or bits outside {2…8, 16}.
    public init(rank: Int, bits: Int) throws {
        guard rank >= 0 else { throw KVCompressionError.invalidArgument("rank \(rank) is negative") }
        guard bits == 16 || (2...8).contains(bits) else {
            throw KVCompressionError.invalidArgument("bits \(bits) outside 2...8 or 16")
        }
        self.rank = rank
        self.bits = bits
    }
}

/// The K and V settings of one layer.
public struct LayerKVSetting: Sendable, Hashable, Codable {
    /// Keys.
    public let k: BranchSetting
    /// Values.
    public let v: BranchSetting

    /// A layer's settings.
    public init(k: BranchSetting, v: BranchSetting) {
        self.k = k
        self.v = v
    }

    /// The setting of `kind`.
    public subscript(kind: ProjectionKind) -> BranchSetting { kind == .k ? k : v }
}

/// The bi-branch KV cache memory model of DESIGN.md §4 ("Bi-branch cache").
///
/// A query at position t reads exact K/V for the last w positions and compressed features before;
/// bytes are counted at context length L and batch N (every per-sequence figure times N).
/// Fractional bytes (r·b/8 with r·b not a multiple of 8) are kept, as in the definition.
public struct BiBranchMemoryModel: Sendable, Hashable {
    /// d_kv = n_kv_heads × head_dim.
    public let kvSize: Int
    /// d, the hidden size (the input width of A, for the factor parameter cost).
    public let hiddenSize: Int
    /// w, the exact window.
    public let window: Int
    /// g, the group size along the r channels; nil means one group per token (⌈r/g⌉ = 1).
    public let groupSize: Int?
    /// m, metadata bytes per group (fp16 scale + fp16 min = 4).
    public let metadataBytesPerGroup: Int
    /// The basis; `fitted` also stores features for window tokens.
    public let basis: BasisKind

    /// A memory model.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for non-positive sizes, a negative window or metadata, or g < 1.
    /// The sliding-window length W of the layers in ``slidingLayers``: their cache (compressed or
    /// not, and the baseline's) holds at most W positions, so L is min(L, W) there.
    public let slidingWindow: Int?
    /// The layers (0-based) that attend through the sliding window.
    public let slidingLayers: Set<Int>

    /// The context length a layer's cache holds at L: min(L, W) on a sliding-window layer.
    public func cachedPositions(layer: Int?, contextLength: Int) -> Int {
        guard let w = slidingWindow, let layer, slidingLayers.contains(layer) else { return contextLength }
        return min(contextLength, w)
    }

    /// Whether compressing `layer` saves anything at context L (a sliding-window layer whose window
    /// does not exceed the exact window saves nothing).
    public func canSave(layer: Int, contextLength: Int) -> Bool {
        cachedPositions(layer: layer, contextLength: contextLength) > window || basis == .fitted
    }

    public init(kvSize: Int, hiddenSize: Int, window: Int, groupSize: Int?, metadataBytesPerGroup: Int = 4,
                basis: BasisKind, slidingWindow: Int? = nil, slidingLayers: Set<Int> = []) throws {
        guard kvSize > 0, hiddenSize > 0, window >= 0, metadataBytesPerGroup >= 0 else {
            throw KVCompressionError.invalidArgument(
                "memory model: d_kv \(kvSize), d \(hiddenSize), window \(window), metadata \(metadataBytesPerGroup)")
        }
        if let g = groupSize, g < 1 { throw KVCompressionError.invalidArgument("group size \(g)") }
        self.kvSize = kvSize
        self.hiddenSize = hiddenSize
        self.window = window
        self.groupSize = groupSize
        self.metadataBytesPerGroup = metadataBytesPerGroup
        self.basis = basis
        if let w = slidingWindow, w < 1 { throw KVCompressionError.invalidArgument("sliding window \(w)") }
        self.slidingWindow = slidingWindow
        self.slidingLayers = slidingWindow == nil ? [] : slidingLayers
    }

    func check(_ s: BranchSetting) throws {
        guard s.rank <= kvSize else { throw KVCompressionError.invalidArgument("rank \(s.rank) above d_kv \(kvSize)") }
    }

    func checkContext(_ contextLength: Int, _ batch: Int) throws {
        guard contextLength >= 0, batch >= 0 else {
            throw KVCompressionError.invalidArgument("context length \(contextLength), batch \(batch)")
        }
    }

    /// Baseline bytes of one layer: 2 · L · d_kv · 2 (K and V in fp16), times N (DESIGN.md §4).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for a negative L or N.
    /// On a sliding-window `layer` L is min(L, W).
    public func baselineLayerBytes(contextLength: Int, batch: Int = 1, layer: Int? = nil) throws -> Double {
        try checkContext(contextLength, batch)
        let l = cachedPositions(layer: layer, contextLength: contextLength)
        return Double(batch) * 2 * Double(l) * Double(kvSize) * 2  // DESIGN.md §4 "Bi-branch cache": baseline
    }

    /// Bytes of one compressed token of a branch: r·b/8 + ⌈r/g⌉·m, with no metadata at b = 16 (DESIGN.md §4).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for r > d_kv.
    public func compressedTokenBytes(_ s: BranchSetting) throws -> Double {
        try check(s)
        // ⌈r/g⌉ without r + g − 1 (a config may say g = Int.max), and products in Double: r ≤ d_kv may be huge.
        let groups = s.rank == 0 || s.bits == 16 ? 0 : (groupSize.map { s.rank / $0 + (s.rank % $0 == 0 ? 0 : 1) } ?? 1)
        return Double(s.rank) * Double(s.bits) / 8 + Double(groups) * Double(metadataBytesPerGroup)  // DESIGN.md §4: r·b/8 + ⌈r/g⌉·m
    }

    /// Bytes of K or V of one layer and one sequence at context length L (DESIGN.md §4):
    /// min(L,w)·d_kv·2 + max(L−w,0)·(r·b/8 + ⌈r/g⌉·m), plus min(L,w)·(r·b/8 + ⌈r/g⌉·m) for `fitted`.
    /// On a sliding-window `layer` L is min(L, W).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for r > d_kv or a negative L.
    public func branchBytes(_ s: BranchSetting, contextLength: Int, layer: Int? = nil) throws -> Double {
        try checkContext(contextLength, 1)
        let contextLength = cachedPositions(layer: layer, contextLength: contextLength)
        let perToken = try compressedTokenBytes(s)
        let exact = min(contextLength, window), compressed = max(contextLength - window, 0)
        // With `fitted`, window tokens also hold features (DESIGN.md §4): they cannot be made from the exact k later.
        let featureTokens = basis == .fitted ? contextLength : compressed
        return Double(exact) * Double(kvSize) * 2 + Double(featureTokens) * perToken
    }

    /// Bytes of one layer (K + V) at context length L and batch N (`layer`: its index, for sliding windows).
    /// - Throws: as ``branchBytes(_:contextLength:layer:)``.
    public func layerBytes(_ setting: LayerKVSetting, contextLength: Int, batch: Int = 1, layer: Int? = nil) throws -> Double {
        try checkContext(contextLength, batch)
        let perSequence = try branchBytes(setting.k, contextLength: contextLength, layer: layer)
            + branchBytes(setting.v, contextLength: contextLength, layer: layer)
        return Double(batch) * perSequence
    }

    /// Bytes of all layers at context length L and batch N (settings[i] is layer i).
    /// - Throws: as ``branchBytes(_:contextLength:layer:)``.
    public func totalBytes(_ settings: [LayerKVSetting], contextLength: Int, batch: Int = 1) throws -> Double {
        try settings.indices.reduce(0) {
            $0 + (try layerBytes(settings[$1], contextLength: contextLength, batch: batch, layer: $1))
        }
    }

    /// The fp16 baseline of `layerCount` layers.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for a negative L or N.
    /// Sliding-window layers count min(L, W) positions, as a real cache holds.
    public func baselineTotalBytes(layerCount: Int, contextLength: Int, batch: Int = 1) throws -> Double {
        try (0..<max(layerCount, 0)).reduce(0) {
            $0 + (try baselineLayerBytes(contextLength: contextLength, batch: batch, layer: $1))
        }
    }

    /// The effective ratio 1 − kvscope/baseline over all layers (DESIGN.md §4); 0 when the baseline is 0.
    /// - Throws: as ``branchBytes(_:contextLength:)``.
    public func effectiveRatio(_ settings: [LayerKVSetting], contextLength: Int, batch: Int = 1) throws -> Double {
        let baseline = try baselineTotalBytes(layerCount: settings.count, contextLength: contextLength, batch: batch)
        let compressed = try totalBytes(settings, contextLength: contextLength, batch: batch)
        return baseline > 0 ? 1 - compressed / baseline : 0  // DESIGN.md §4: ratio = 1 − kvscope/baseline
    }

    /// The nominal ratio 1 − Σ(r_k·b_k + r_v·b_v)/(n_layers·2·d_kv·16), as papers quote it (DESIGN.md §4).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for r > d_kv.
    public func nominalRatio(_ settings: [LayerKVSetting]) throws -> Double {
        guard !settings.isEmpty else { return 0 }
        var bits = 0.0
        for s in settings {
            try check(s.k)
            try check(s.v)
            bits += Double(s.k.rank) * Double(s.k.bits) + Double(s.v.rank) * Double(s.v.bits)
        }
        return 1 - bits / (Double(settings.count) * 2 * Double(kvSize) * 16)  // DESIGN.md §4: nominal ratio
    }

    /// Parameter bytes of the factors of one branch in fp16: A [r, d] and B [d_kv, r], 2·(r·d + d_kv·r).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for r > d_kv.
    public func factorParameterBytes(_ s: BranchSetting) throws -> Int {
        try check(s)
        return 2 * (s.rank * hiddenSize + kvSize * s.rank)
    }

    /// Parameter bytes of all factors (K and V of every layer), fp16.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for r > d_kv.
    public func factorParameterBytes(_ settings: [LayerKVSetting]) throws -> Int {
        try settings.reduce(0) { $0 + (try factorParameterBytes($1.k)) + (try factorParameterBytes($1.v)) }
    }
}
