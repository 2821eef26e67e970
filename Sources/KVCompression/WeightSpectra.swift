import LinearAlgebra

/// The K and V spectra of one layer.
public struct LayerSpectra: Sendable, Hashable, Codable {
    /// Layer index.
    public let layer: Int
    /// Spectrum of W_k (or K).
    public let k: Spectrum
    /// Spectrum of W_v (or V).
    public let v: Spectrum

    /// A layer's pair of spectra.
    public init(layer: Int, k: Spectrum, v: Spectrum) {
        self.layer = layer
        self.k = k
        self.v = v
    }

    /// The spectrum of `kind`.
    public subscript(kind: ProjectionKind) -> Spectrum { kind == .k ? k : v }
}

/// Singular values of W_k and W_v for every layer, computed in parallel across layers.
///
/// Each layer is one unit of work: its two spectra are read from `cache` when both keys hit
/// (then `load` is not called at all, which makes a warm start cheap); otherwise `load(layer)`
/// supplies W_k and W_v ([d_kv, d], [out, in] order) and the spectra are computed with LAPACK
/// and stored. OpenBLAS runs single-threaded inside the parallel region and its thread count is
/// restored afterwards. A cache that cannot be written does not fail the computation.
///
/// - Parameters:
///   - layerCount: layers 0..<layerCount are computed.
///   - cache: where spectra are kept between runs; nil disables caching.
///   - cacheKey: the key of a layer's tensor (file identity + tensor name + basis); required for caching.
///   - progress: called from worker threads after each layer.
///   - cancellation: checked before each layer; a set flag ends the call with ``KVCompressionError/cancelled``.
///   - load: returns (W_k, W_v) for a layer; may be called concurrently from several threads.
/// - Returns: one ``LayerSpectra`` per layer, in layer order.
/// - Throws: the first error of `load`, ``KVCompressionError/linearAlgebra(_:)``, or ``KVCompressionError/cancelled``.
public func computeWeightSpectra(
    layerCount: Int,
    cache: SpectrumCache? = nil,
    cacheKey: (@Sendable (_ layer: Int, _ kind: ProjectionKind) -> String)? = nil,
    progress: ProgressHandler? = nil,
    cancellation: CancellationFlag? = nil,
    load: @Sendable (_ layer: Int) throws -> (k: Matrix, v: Matrix)
) throws -> [LayerSpectra] {
    guard layerCount >= 0 else { throw KVCompressionError.invalidArgument("negative layer count \(layerCount)") }
    let results = ParallelResults<LayerSpectra>(count: layerCount)
    let counter = ProgressCounter(total: layerCount, handler: progress)
    try parallelJobs(count: layerCount, cancellation: cancellation) { layer in
        let keys = cacheKey.map { key in (k: key(layer, .k), v: key(layer, .v)) }
        if let cache, let keys, let k = cache.load(key: keys.k), let v = cache.load(key: keys.v) {
            results.set(layer, LayerSpectra(layer: layer, k: k, v: v))
        } else {
            let weights = try load(layer)
            let k = try Spectrum(matrix: weights.k)
            let v = try Spectrum(matrix: weights.v)
            if let cache, let keys {
                try? cache.store(k, key: keys.k)
                try? cache.store(v, key: keys.v)
            }
            results.set(layer, LayerSpectra(layer: layer, k: k, v: v))
        }
        counter.step()
    }
    return try results.values.enumerated().map { layer, value in
        guard let value else { throw KVCompressionError.invalidArgument("layer \(layer) produced no spectrum") }
        return value
    }
}
