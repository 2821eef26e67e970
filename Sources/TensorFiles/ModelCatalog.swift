import LinearAlgebra

/// What a tensor does in the model (DESIGN.md §5, `inspect`).
public enum TensorRole: String, Sendable, CaseIterable {
    case q, k, v, o, gate, up, down, norm, embed, output, other
}

/// Which parameter of a module a tensor is.
public enum TensorParameter: String, Sendable, CaseIterable {
    /// A weight matrix or a norm's scale (LayerNorm `weight`/`gamma`).
    case weight
    /// A bias vector (LayerNorm `bias`/`beta` included).
    case bias
    /// Anything else (buffers such as GPT-2's causal mask, rotary tables).
    case other
}

/// The naming scheme a model's tensors follow.
public enum ModelFamily: String, Sendable, CaseIterable {
    /// llama.cpp GGUF names: `token_embd.weight`, `blk.N.attn_q.weight`, … (any GGUF architecture).
    case gguf
    /// Hugging Face llama / mistral / qwen: `model.layers.N.self_attn.q_proj.weight`, …
    case llama
    /// Hugging Face BERT: `encoder.layer.N.attention.self.query.weight`, … (with or without `bert.`).
    case bert
    /// Hugging Face GPT-2: `h.N.attn.c_attn.weight` (fused q/k/v, Conv1D [in, out]), …
    case gpt2
    /// Not recognized: every tensor has role `other`.
    case unknown
}

/// Architecture facts read from GGUF metadata or config.json.
public struct ModelHyperparameters: Sendable, Equatable {
    /// The architecture name: GGUF `general.architecture`, or config.json `model_type`
    /// (`llama`, `mistral`, `qwen2`, `bert`, `gpt2`, …).
    public var architecture: String
    public var nLayers: Int
    /// The residual width d.
    public var hiddenSize: Int
    public var nHeads: Int
    /// Key/value heads (GQA); equals `nHeads` without GQA.
    public var nKVHeads: Int
    /// Per-head width; not necessarily `hiddenSize / nHeads`.
    public var headDim: Int
    public var vocabSize: Int
    /// The training context length, when the file says.
    public var contextLength: Int?
    /// The feed-forward inner width, when known.
    public var ffnSize: Int?
    /// RoPE base frequency (nil for models without RoPE).
    public var ropeTheta: Double?
    /// The norm epsilon (RMSNorm or LayerNorm), when the file says.
    public var normEps: Double?
    /// Whether the output projection reuses the token embedding (no separate output tensor).
    public var tiedEmbeddings: Bool
    /// The sliding-window length of the layers in ``slidingLayers`` (Gemma 3), nil without one.
    public var slidingWindow: Int?
    /// The layers that attend through the sliding window: their cache never holds more than
    /// ``slidingWindow`` positions.
    public var slidingLayers: Set<Int> = []

    /// d_kv = n_kv_heads × head_dim (DESIGN.md §4): the rows of W_k and W_v.
    public var kvDim: Int { nKVHeads * headDim }
    /// n_heads × head_dim: the rows of W_q.
    public var qDim: Int { nHeads * headDim }

    public init(architecture: String, nLayers: Int, hiddenSize: Int, nHeads: Int, nKVHeads: Int, headDim: Int,
                vocabSize: Int, contextLength: Int? = nil, ffnSize: Int? = nil, ropeTheta: Double? = nil,
                normEps: Double? = nil, tiedEmbeddings: Bool = false) {
        self.architecture = architecture
        self.nLayers = nLayers
        self.hiddenSize = hiddenSize
        self.nHeads = nHeads
        self.nKVHeads = nKVHeads
        self.headDim = headDim
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ffnSize = ffnSize
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
    }
}

/// One logical tensor of a model: a file tensor, or one part (q, k or v) of a fused one.
public struct CatalogEntry: Sendable, Equatable {
    /// The tensor's name in the file (the fused tensor's name for a part of it).
    public var name: String
    /// Logical shape in PyTorch order: weights are [out, in] (GPT-2 Conv1D weights are
    /// reported transposed from the file's [in, out]).
    public var shape: [Int]
    /// The file's dtype name (GGML type name for GGUF, safetensors dtype otherwise).
    public var dtype: String
    /// The transformer block, nil for tensors outside the blocks (embeddings, final norm, output).
    public var layer: Int?
    public var role: TensorRole
    public var parameter: TensorParameter
    /// For a part of a fused tensor: its rows in the fused tensor's [out, in] orientation
    /// (for a fused bias: its elements). nil for a whole tensor.
    public var rows: Range<Int>?
    /// True when the file stores this weight as [in, out] (GPT-2 Conv1D), so reading it transposes.
    public var transposed: Bool
    /// True for llama GGUF q/k weights, whose rows llama.cpp permuted for adjacent-pair RoPE
    /// (DESIGN.md §4); ``ModelCatalog/matrix(_:from:hfRowOrder:)`` can undo it.
    public var ropePermuted: Bool
    /// Bytes of this logical tensor in the file (a part's share of a fused tensor).
    public var byteCount: Int

    public init(name: String, shape: [Int], dtype: String, layer: Int?, role: TensorRole,
                parameter: TensorParameter, rows: Range<Int>? = nil, transposed: Bool = false,
                ropePermuted: Bool = false, byteCount: Int) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.layer = layer
        self.role = role
        self.parameter = parameter
        self.rows = rows
        self.transposed = transposed
        self.ropePermuted = ropePermuted
        self.byteCount = byteCount
    }
}

/// A model's architecture and the (layer, role) of each of its tensors.
///
/// A pure function of the tensor list and the metadata (GGUF key/values, or config.json
/// flattened), so it is testable without files. Recognized:
/// - GGUF (any architecture with llama.cpp names; hyper-parameters from `ARCH.*` keys);
/// - Hugging Face llama/mistral/qwen, BERT and GPT-2 safetensors with their config.json.
///
/// Anything else gets family ``ModelFamily/unknown``, no hyper-parameters and role `other`.
public struct ModelCatalog: Sendable, Equatable {
    public var family: ModelFamily
    /// nil only for family ``ModelFamily/unknown``.
    public var hyperparameters: ModelHyperparameters?
    /// Logical tensors in file order; a fused q/k/v tensor appears as three entries.
    public var entries: [CatalogEntry]

    /// Recognizes the architecture and catalogs every tensor.
    ///
    /// - Parameters:
    ///   - tensors: the file's tensors.
    ///   - metadata: GGUF metadata (recognized by `general.architecture`), or config.json
    ///     as ``JSONValue/flattenedMetadata(prefix:)``, or empty.
    ///   - path: the model's path, for error messages.
    /// - Throws: ``TensorFileError`` when a recognized model lacks a needed hyper-parameter or a
    ///   tensor's shape or layer disagrees with them.
    public init(tensors: [TensorInfo], metadata: [String: MetadataValue], path: String = "model") throws {
        let family = ModelCatalog.recognize(tensors: tensors, metadata: metadata)
        self.family = family
        var parsed: [(TensorInfo, NameParse)] = []
        parsed.reserveCapacity(tensors.count)
        for t in tensors { parsed.append((t, ModelCatalog.parseName(t.name, family: family))) }
        guard family != .unknown else {
            hyperparameters = nil
            entries = tensors.map {
                CatalogEntry(name: $0.name, shape: $0.shape, dtype: $0.dtype, layer: nil, role: .other,
                             parameter: .other, byteCount: $0.byteCount)
            }
            return
        }
        let hp = try ModelCatalog.hyperparameters(family: family, metadata: metadata, parsed: parsed, path: path)
        hyperparameters = hp
        let ropePermuted = family == .gguf && Architecture.gguf(hp.architecture)?.ggufPermutesQK ?? false
        var entries: [CatalogEntry] = []
        entries.reserveCapacity(3 * tensors.count)  // a fused q/k/v tensor becomes three entries
        for (t, p) in parsed {
            if let layer = p.layer, layer >= hp.nLayers {
                throw TensorFileError(path: path, "layer \(layer) is beyond the model's \(hp.nLayers) layers", at: "tensor \(t.name)")
            }
            var shape = t.shape
            if p.transposed {
                guard shape.count == 2 else {
                    throw TensorFileError(path: path, "a Conv1D weight must be 2-D, not \(shape)", at: "tensor \(t.name)")
                }
                shape.reverse()
            }
            if p.fusedQKV {
                let parts: [(TensorRole, Int)] = [(.q, hp.qDim), (.k, hp.kvDim), (.v, hp.kvDim)]
                let total = hp.qDim + 2 * hp.kvDim
                guard let first = shape.first, first == total, t.byteCount % total == 0 else {
                    throw TensorFileError(path: path, "fused q/k/v has shape \(shape), expected \(total) = n_heads×head_dim + 2×n_kv_heads×head_dim rows",
                                          at: "tensor \(t.name)")
                }
                var start = 0
                for (role, n) in parts {
                    var partShape = shape
                    partShape[0] = n
                    entries.append(CatalogEntry(name: t.name, shape: partShape, dtype: t.dtype, layer: p.layer, role: role,
                                                parameter: p.parameter, rows: start..<(start + n), transposed: p.transposed,
                                                byteCount: t.byteCount / total * n))
                    start += n
                }
                continue
            }
            let entry = CatalogEntry(name: t.name, shape: shape, dtype: t.dtype, layer: p.layer, role: p.role,
                                     parameter: p.parameter, transposed: p.transposed,
                                     ropePermuted: ropePermuted && p.parameter == .weight && (p.role == .q || p.role == .k),
                                     byteCount: t.byteCount)
            try ModelCatalog.checkShape(entry, hp, path: path)
            entries.append(entry)
        }
        for e in entries where e.rows != nil { try ModelCatalog.checkShape(e, hp, path: path) }
        self.entries = entries
    }

    /// The entry of a layer's (or, with layer nil, the model's) tensor with this role and parameter.
    public func entry(layer: Int?, role: TensorRole, parameter: TensorParameter = .weight) -> CatalogEntry? {
        entries.first { $0.layer == layer && $0.role == role && $0.parameter == parameter }
    }

    /// Every entry of one layer, in file order.
    public func entries(layer: Int) -> [CatalogEntry] { entries.filter { $0.layer == layer } }

    /// The layer indices present, ascending.
    public var layers: [Int] { Array(Set(entries.compactMap(\.layer))).sorted() }

    /// A logical tensor's values in its logical shape, row-major: transposed back from Conv1D
    /// storage and cut to the part's rows when it is part of a fused tensor.
    /// - Throws: ``TensorFileError`` when the file has no such tensor or cannot convert its dtype.
    public func floats(_ entry: CatalogEntry, from file: any TensorFile) throws -> [Float] {
        guard let info = file.tensor(named: entry.name) else {
            throw TensorFileError(path: file.path, "no tensor named \(entry.name)")
        }
        var values = try file.floats(info)
        if entry.transposed, info.shape.count == 2 {
            let m = try Matrix(rows: info.shape[0], cols: info.shape[1], storage: values)
            values = m.transposed.storage
        }
        guard let rows = entry.rows else { return values }
        guard let rowWidth = CheckedSize.product(Array(entry.shape.dropFirst())),
              let lo = CheckedSize.multiply(rows.lowerBound, rowWidth), let hi = CheckedSize.multiply(rows.upperBound, rowWidth),
              hi <= values.count else {
            throw TensorFileError(path: file.path, "rows \(rows) are outside the tensor", at: "tensor \(entry.name)")
        }
        return Array(values[lo..<hi])
    }

    /// A 2-D logical tensor as a Matrix [out, in].
    /// - Parameter hfRowOrder: for a ``CatalogEntry/ropePermuted`` weight, undo llama.cpp's row
    ///   permutation so rows are in the Hugging Face (rotate-half) channel order (DESIGN.md §4).
    /// - Throws: ``TensorFileError`` for a tensor that is not 2-D or cannot be read.
    public func matrix(_ entry: CatalogEntry, from file: any TensorFile, hfRowOrder: Bool = false) throws -> Matrix {
        guard entry.shape.count == 2 else {
            throw TensorFileError(path: file.path, "not a matrix: shape \(entry.shape)", at: "tensor \(entry.name)")
        }
        let m = try Matrix(rows: entry.shape[0], cols: entry.shape[1], storage: floats(entry, from: file))
        guard hfRowOrder, entry.ropePermuted, let hp = hyperparameters else { return m }
        let heads = entry.role == .q ? hp.nHeads : hp.nKVHeads
        return try ModelCatalog.undoRoPEPermutation(m, heads: heads, path: file.path, name: entry.name)
    }

    /// Undoes llama.cpp's q/k row permutation: GGUF row h·hd + 2i + j holds HF row h·hd + j·hd/2 + i.
    /// - Throws: ``TensorFileError`` when the rows are not `heads` whole heads of even width.
    public static func undoRoPEPermutation(_ m: Matrix, heads: Int, path: String = "", name: String = "") throws -> Matrix {
        guard heads > 0, m.rows % heads == 0, (m.rows / heads) % 2 == 0 else {
            throw TensorFileError(path: path, "\(m.rows) rows are not \(heads) heads of even width", at: "tensor \(name)")
        }
        let hd = m.rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: m.rows * m.cols)
        m.withUnsafeBufferPointer { src in
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let from = (h * hd + 2 * i + j) * m.cols
                        let to = (h * hd + j * half + i) * m.cols
                        for c in 0..<m.cols { out[to + c] = src[from + c] }
                    }
                }
            }
        }
        return try Matrix(rows: m.rows, cols: m.cols, storage: out)
    }
}
