import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// Reads and writes the calibration statistics safetensors file that docs/calibration-stats.md
/// defines (layout version 1).
public enum CalibrationFile {
    /// Where the statistics came from: the informative metadata keys of the file.
    public struct Provenance: Sendable, Equatable {
        /// File name of the text (informative).
        public var textName: String
        /// Lower-case hex SHA-256 of the model file, or "" when not computed.
        public var modelSHA256: String
        /// Seed of the token sampling.
        public var sampleSeed: UInt64
        /// Tokens per independent sequence the text was split into (0: one sequence).
        public var sequenceLength: Int
        /// Number of independent sequences the text was run as.
        public var sequenceCount: Int

        /// Provenance values.
        public init(textName: String, modelSHA256: String = "", sampleSeed: UInt64 = 0, sequenceLength: Int = 0,
                    sequenceCount: Int = 1) {
            self.textName = textName
            self.modelSHA256 = modelSHA256
            self.sampleSeed = sampleSeed
            self.sequenceLength = sequenceLength
            self.sequenceCount = sequenceCount
        }
    }

    /// How tensors are stored.
    public struct Encoding: Sendable, Equatable {
        /// Grams as packed fp16 upper triangles (``KVCompression/PackedGram``) instead of full F32.
        public var packedGrams: Bool
        /// Sampled rows in F16 instead of F32.
        public var halfSamples: Bool
        /// Whether to write d×d input Grams (`attn_in.gram` and the other inputs).
        public var inputGrams: Bool

        /// The full-precision form (the cache and `kvscope calibrate`).
        public static let full = Encoding(packedGrams: false, halfSamples: false, inputGrams: true)
        /// The sample bundle's compact form: packed Grams, fp16 samples, no input Grams.
        public static let compact = Encoding(packedGrams: true, halfSamples: true, inputGrams: false)

        public init(packedGrams: Bool, halfSamples: Bool, inputGrams: Bool) {
            self.packedGrams = packedGrams
            self.halfSamples = halfSamples
            self.inputGrams = inputGrams
        }
    }

    /// The `format` value.
    public static var formatName: String { CalibrationStatistics.formatName }
    /// The `version` value.
    public static var formatVersion: Int { CalibrationStatistics.formatVersion }

    /// The serialized safetensors writer for `statistics`.
    /// - Throws: ``TensorFileError`` when the statistics are inconsistent (shapes, layer numbering).
    public static func writer(_ statistics: CalibrationStatistics, provenance: Provenance,
                              encoding: Encoding = .full) throws -> SafeTensorsWriter {
        guard let first = statistics.layers.first else {
            throw TensorFileError(path: "calibration statistics", "no layers")
        }
        let d = first.sampleInputs.cols, dkv = first.keyGram.rows
        let s = statistics.sampleTokenIndices.count
        var w = SafeTensorsWriter(metadata: [
            "format": formatName, "version": String(formatVersion),
            "n_layers": String(statistics.layers.count), "hidden_size": String(d), "kv_size": String(dkv),
            "n_tokens": String(statistics.tokenCount), "text_sha256": statistics.textSHA256,
            "text_name": provenance.textName, "model_sha256": provenance.modelSHA256,
            "sample_count": String(s), "sample_seed": String(provenance.sampleSeed), "kv_channel_order": "hf",
            "sequence_length": String(provenance.sequenceLength), "n_sequences": String(provenance.sequenceCount),
        ])
        func gram(_ name: String, _ m: Matrix) throws {
            if encoding.packedGrams {
                let packed = try wrap(name) { try PackedGram(packing: m) }
                try w.add(name, dtype: .f16, shape: [packed.upper.count], bytes: packed.upper.withUnsafeBytes { Array($0) })
                try w.add(name + "_scale", floats: [packed.scale], shape: [1])
            } else {
                try w.add(name, matrix: m)
            }
        }
        for (index, layer) in statistics.layers.enumerated() {
            let p = "layer.\(index)."
            guard layer.layer == index, layer.keyGram.rows == dkv, layer.valueGram.rows == dkv,
                  layer.sampleInputs.rows == s, layer.sampleKeys.rows == s, layer.sampleValues.rows == s else {
                throw TensorFileError(path: "calibration statistics", "layer \(layer.layer) at index \(index) has inconsistent shapes")
            }
            for input in MatrixInput.allCases {
                guard let stats = layer.inputs[input] else { continue }
                if encoding.inputGrams, let g = stats.gram { try w.add(p + input.rawValue + ".gram", matrix: g) }
                try w.add(p + input.rawValue + ".mean_abs", floats: stats.meanAbs, shape: [stats.meanAbs.count])
            }
            try gram(p + "k.gram", layer.keyGram)
            try gram(p + "v.gram", layer.valueGram)
            if let rotated = layer.keyGramPostRoPE { try gram(p + "k_rope.gram", rotated) }
            if let mean = layer.keyMean { try w.add(p + "k.mean", floats: mean, shape: [mean.count]) }
            if let mean = layer.valueMean { try w.add(p + "v.mean", floats: mean, shape: [mean.count]) }
            let sampleType: SafeTensorsDType = encoding.halfSamples ? .f16 : .f32
            try w.add(p + "sample.x", matrix: layer.sampleInputs, as: sampleType)
            try w.add(p + "sample.k", matrix: layer.sampleKeys, as: sampleType)
            try w.add(p + "sample.v", matrix: layer.sampleValues, as: sampleType)
        }
        try w.add("sample.token_index", int64s: statistics.sampleTokenIndices.map(Int64.init), shape: [s])
        return w
    }

    /// Writes `statistics` atomically to `path`.
    /// - Parameter overwrite: when false, an existing file is an error.
    /// - Throws: ``TensorFileError`` for inconsistent statistics, I/O errors or an existing file.
    public static func write(_ statistics: CalibrationStatistics, to path: String, provenance: Provenance,
                             encoding: Encoding = .full, overwrite: Bool = false) throws {
        try writer(statistics, provenance: provenance, encoding: encoding).write(to: path, overwrite: overwrite)
    }

    /// Reads a statistics file, checking format, version and every shape against the metadata.
    /// - Throws: ``TensorFileError`` naming the file and the key or tensor that is wrong.
    public static func read(path: String) throws -> (statistics: CalibrationStatistics, provenance: Provenance) {
        let file = try SafeTensorsFile(path: path)
        let meta = file.metadata
        func fail(_ message: String, _ at: String = "") -> TensorFileError { TensorFileError(path: path, message, at: at) }
        guard meta["format"] == formatName else {
            throw fail("format is \(meta["format"].map { "\"\($0)\"" } ?? "missing"), expected \"\(formatName)\"", "metadata format")
        }
        guard meta["version"] == String(formatVersion) else {
            throw fail("version \(meta["version"] ?? "missing") is not supported (this build reads \(formatVersion))", "metadata version")
        }
        func int(_ key: String, minimum: Int = 0) throws -> Int {
            guard let text = meta[key], let v = Int(text), v >= minimum else {
                throw fail("missing or not an integer ≥ \(minimum)", "metadata \(key)")
            }
            return v
        }
        let layers = try int("n_layers", minimum: 1), d = try int("hidden_size", minimum: 1)
        let dkv = try int("kv_size", minimum: 1), tokens = try int("n_tokens"), s = try int("sample_count")
        guard let textSHA = meta["text_sha256"], textSHA.count == 64 else {
            throw fail("missing or not a hex SHA-256", "metadata text_sha256")
        }
        if let order = meta["kv_channel_order"], order != "hf" {
            throw fail("\"\(order)\" is not supported (expected \"hf\")", "metadata kv_channel_order")
        }

        func info(_ name: String) -> TensorInfo? { file.tensor(named: name) }
        func floats(_ name: String, shape: [Int]) throws -> [Float]? {
            guard let t = info(name) else { return nil }
            guard t.shape == shape else { throw fail("shape \(t.shape), expected \(shape)", "tensor \(name)") }
            guard let dtype = file.dtype(of: t), dtype == .f32 || dtype == .f16 else {
                throw fail("dtype \(t.dtype), expected F32 or F16", "tensor \(name)")
            }
            return try file.floats(t)
        }
        func required(_ name: String, shape: [Int]) throws -> [Float] {
            guard let v = try floats(name, shape: shape) else { throw fail("missing", "tensor \(name)") }
            return v
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws -> Matrix? {
            guard let v = try floats(name, shape: [rows, cols]) else { return nil }
            return try Matrix(rows: rows, cols: cols, storage: v)
        }
        func gram(_ name: String, size n: Int) throws -> Matrix? {
            guard let t = info(name) else { return nil }
            if t.shape == [n, n] {
                guard file.dtype(of: t) == .f32 else { throw fail("a full Gram must be F32, got \(t.dtype)", "tensor \(name)") }
                guard info(name + "_scale") == nil else { throw fail("a full F32 Gram has no _scale tensor", "tensor \(name)_scale") }
                return try Matrix(rows: n, cols: n, storage: file.floats(t))
            }
            let count = PackedGram.elementCount(size: n)
            guard t.shape == [count], file.dtype(of: t) == .f16 else {
                throw fail("shape \(t.shape) \(t.dtype), expected F32 [\(n), \(n)] or packed F16 [\(count)]", "tensor \(name)")
            }
            let scale = try required(name + "_scale", shape: [1])[0]
            let packed: PackedGram
            do {
                packed = try PackedGram(size: n, scale: scale, upper: file.floats(t).map(HalfPrecision.halfFromFloat))
            } catch {
                throw fail("\(error)", "tensor \(name)_scale")
            }
            return packed.unpacked()
        }

        var result: [LayerCalibration] = []
        for layer in 0..<layers {
            let p = "layer.\(layer)."
            var inputs: [MatrixInput: InputStatistics] = [:]
            for input in MatrixInput.allCases {
                let base = p + input.rawValue
                guard let meanInfo = info(base + ".mean_abs") else {
                    if input == .attentionInput { throw fail("missing", "tensor \(base).mean_abs") }
                    continue
                }
                let width = input == .attentionInput ? d : (meanInfo.shape.first ?? 0)
                let mean = try required(base + ".mean_abs", shape: [width])
                let g = try matrix(base + ".gram", rows: width, cols: width)
                inputs[input] = InputStatistics(gram: g, meanAbs: mean)
            }
            guard let k = try gram(p + "k.gram", size: dkv) else { throw fail("missing", "tensor \(p)k.gram") }
            guard let v = try gram(p + "v.gram", size: dkv) else { throw fail("missing", "tensor \(p)v.gram") }
            let rotated = try gram(p + "k_rope.gram", size: dkv)
            let keyMean = info(p + "k.mean") == nil ? nil : try required(p + "k.mean", shape: [dkv])
            let valueMean = info(p + "v.mean") == nil ? nil : try required(p + "v.mean", shape: [dkv])
            func samples(_ name: String, _ cols: Int) throws -> Matrix {
                if s == 0 && info(p + name) == nil { return Matrix(rows: 0, cols: cols) }
                guard let m = try matrix(p + name, rows: s, cols: cols) else { throw fail("missing", "tensor \(p)\(name)") }
                return m
            }
            result.append(LayerCalibration(
                layer: layer, inputs: inputs, keyGram: k, valueGram: v, keyGramPostRoPE: rotated,
                keyMean: keyMean, valueMean: valueMean,
                sampleInputs: try samples("sample.x", d), sampleKeys: try samples("sample.k", dkv),
                sampleValues: try samples("sample.v", dkv)))
        }
        var indices: [Int] = []
        if let t = info("sample.token_index") {
            guard t.shape == [s] else { throw fail("shape \(t.shape), expected [\(s)]", "tensor sample.token_index") }
            guard file.dtype(of: t) == .i64 else { throw fail("dtype \(t.dtype), expected I64", "tensor sample.token_index") }
            indices = try file.int64s(t).map { Int($0) }
            guard indices.allSatisfy({ $0 >= 0 && $0 < max(tokens, 1) }), zip(indices, indices.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw fail("indices must be ascending within 0..<\(tokens)", "tensor sample.token_index")
            }
        } else if s > 0 {
            throw fail("missing", "tensor sample.token_index")
        }
        let provenance = Provenance(
            textName: meta["text_name"] ?? "", modelSHA256: meta["model_sha256"] ?? "",
            sampleSeed: meta["sample_seed"].flatMap { UInt64($0) } ?? 0,
            sequenceLength: meta["sequence_length"].flatMap { Int($0) } ?? 0,
            sequenceCount: meta["n_sequences"].flatMap { Int($0) } ?? 1)
        return (CalibrationStatistics(tokenCount: tokens, textSHA256: textSHA, sampleTokenIndices: indices, layers: result),
                provenance)
    }

    private static func wrap<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as TensorFileError { throw e } catch {
            throw TensorFileError(path: "calibration statistics", "\(error)", at: "tensor \(name)")
        }
    }
}
