import LinearAlgebra
import TensorFiles

/// One transformer block's weights, matrices in [out, in] order as ``TensorInfo/shape`` gives them.
/// The optional parts are present exactly when the family has them (``Architecture/roles``).
/// RMSNorm weights are the multipliers the forward pass applies: a Gemma HF checkpoint's
/// (1 + w) offset is added at load time.
public struct LayerWeights: Sendable {
    /// RMSNorm weight before attention, [d].
    public var attentionNorm: [Float]
    /// W_q [n_heads·head_dim, d], rows paired per the configuration's ``RopeStyle``.
    public var query: Matrix
    /// W_k [d_kv, d], rows paired per the configuration's ``RopeStyle``.
    public var key: Matrix
    /// W_v [d_kv, d].
    public var value: Matrix
    /// W_o [d, n_heads·head_dim].
    public var output: Matrix
    /// RMSNorm weight before the MLP, [d].
    public var feedForwardNorm: [Float]
    /// W_gate [ffn, d].
    public var gate: Matrix
    /// W_up [ffn, d].
    public var up: Matrix
    /// W_down [d, ffn].
    public var down: Matrix
    /// q, k, v biases (Qwen2), in the stored row order.
    public var queryBias: [Float]?
    public var keyBias: [Float]?
    public var valueBias: [Float]?
    /// Per-head RMSNorm weights of Q and K, [head_dim] (Gemma 3).
    public var queryNorm: [Float]?
    public var keyNorm: [Float]?
    /// RMSNorms after attention and after the MLP, [d] (Gemma 3).
    public var postAttentionNorm: [Float]?
    public var postFeedForwardNorm: [Float]?

    public init(attentionNorm: [Float], query: Matrix, key: Matrix, value: Matrix, output: Matrix,
                feedForwardNorm: [Float], gate: Matrix, up: Matrix, down: Matrix,
                queryBias: [Float]? = nil, keyBias: [Float]? = nil, valueBias: [Float]? = nil,
                queryNorm: [Float]? = nil, keyNorm: [Float]? = nil,
                postAttentionNorm: [Float]? = nil, postFeedForwardNorm: [Float]? = nil) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.feedForwardNorm = feedForwardNorm
        self.gate = gate
        self.up = up
        self.down = down
        self.queryBias = queryBias
        self.keyBias = keyBias
        self.valueBias = valueBias
        self.queryNorm = queryNorm
        self.keyNorm = keyNorm
        self.postAttentionNorm = postAttentionNorm
        self.postFeedForwardNorm = postFeedForwardNorm
    }
}

/// The float32 weights of a model, as the forward pass reads them.
///
/// Loaders (GGUF, HF checkpoints, raw test files) dequantize once and hand over plain matrices.
public protocol ModelWeights: Sendable {
    /// Family, sizes, constants and the RoPE pairing of the stored Q/K rows.
    var configuration: ModelConfiguration { get }
    /// Token embeddings [vocab, d].
    var tokenEmbedding: Matrix { get }
    /// Final RMSNorm weight [d].
    var outputNorm: [Float] { get }
    /// Output head [vocab, d]; the token embedding when the model ties them.
    var outputHead: Matrix { get }
    /// The blocks, first to last.
    var layers: [LayerWeights] { get }
}

/// Where a checkpoint's tensor names come from.
public enum TensorNaming: Sendable {
    /// llama.cpp names: `token_embd.weight`, `blk.N.attn_q.weight`, …, `output_norm.weight`, `output.weight`.
    case gguf
    /// HF transformers names: `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, …, `lm_head.weight`.
    case huggingFace

    /// The name of the token embedding, final norm and output head.
    public var tokenEmbedding: String {
        self == .gguf ? Architecture.TensorNames.ggufEmbedding : Architecture.TensorNames.huggingFaceEmbedding
    }
    public var outputNorm: String {
        self == .gguf ? Architecture.TensorNames.ggufOutputNorm : Architecture.TensorNames.huggingFaceOutputNorm
    }
    public var outputHead: String {
        self == .gguf ? Architecture.TensorNames.ggufOutputHead : Architecture.TensorNames.huggingFaceOutputHead
    }

    /// The name of block `layer`'s tensor of `role` in `architecture` (nil: the family has none).
    public func layerTensor(_ layer: Int, _ role: Architecture.Role, in architecture: Architecture = .llama) -> String? {
        self == .gguf ? architecture.names.gguf(layer, role) : architecture.names.huggingFace(layer, role)
    }
}

/// Dense float32 weights held in memory (dequantized once at load).
public struct DenseModelWeights: ModelWeights {
    public let configuration: ModelConfiguration
    public let tokenEmbedding: Matrix
    public let outputNorm: [Float]
    public let outputHead: Matrix
    public let layers: [LayerWeights]

    /// Loads every tensor of the configuration's family through `tensor`, which returns a tensor's
    /// shape ([out, in], PyTorch order) and row-major values, or nil when the file has no tensor of
    /// that name.
    ///
    /// A missing output head means tied embeddings. With ``TensorNaming/huggingFace`` the family's
    /// ``Architecture/huggingFaceNormOffset`` is added to every RMSNorm weight.
    /// - Throws: ``InferenceError/invalidWeight(name:detail:)`` for a missing tensor or a wrong shape,
    ///   and whatever `tensor` throws.
    public init(configuration c: ModelConfiguration, naming: TensorNaming,
                tensor: (String) throws -> (shape: [Int], values: [Float])?) throws {
        func load(_ name: String, _ shape: [Int]) throws -> (shape: [Int], values: [Float]) {
            guard let t = try tensor(name) else { throw InferenceError.invalidWeight(name: name, detail: "missing") }
            return try checked(name, t, shape)
        }
        func checked(_ name: String, _ t: (shape: [Int], values: [Float]), _ shape: [Int]) throws
            -> (shape: [Int], values: [Float]) {
            guard t.shape == shape, t.values.count == shape.reduce(1, *) else {
                throw InferenceError.invalidWeight(
                    name: name, detail: "shape \(t.shape) (\(t.values.count) values), expected \(shape)")
            }
            guard t.values.allSatisfy(\.isFinite) else {
                throw InferenceError.invalidWeight(name: name, detail: "holds a NaN or an infinity")
            }
            return t
        }
        let arch = c.architecture
        let offset = naming == .huggingFace ? arch.huggingFaceNormOffset : 0
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> Matrix {
            try Matrix(rows: rows, cols: cols, storage: load(name, [rows, cols]).values)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] { try load(name, [n]).values }
        func norm(_ name: String, _ n: Int) throws -> [Float] {
            let w = try vector(name, n)
            return offset == 0 ? w : w.map { $0 + offset }
        }

        let d = c.hiddenSize
        configuration = c
        tokenEmbedding = try matrix(naming.tokenEmbedding, c.vocabularySize, d)
        outputNorm = try norm(naming.outputNorm, d)
        if let head = try tensor(naming.outputHead) {
            let t = try checked(naming.outputHead, head, [c.vocabularySize, d])
            outputHead = try Matrix(rows: c.vocabularySize, cols: d, storage: t.values)
        } else {
            outputHead = tokenEmbedding
        }
        var layers = [LayerWeights]()
        for i in 0..<c.layerCount {
            func name(_ role: Architecture.Role) throws -> String {
                guard let n = naming.layerTensor(i, role, in: arch) else {
                    throw InferenceError.invalidWeight(name: "layer \(i) \(role.rawValue)", detail: "\(arch.name) names no such tensor")
                }
                return n
            }
            func optional<T>(_ role: Architecture.Role, _ load: (String) throws -> T) throws -> T? {
                arch.roles.contains(role) ? try load(try name(role)) : nil
            }
            let hd = c.headDimension
            layers.append(LayerWeights(
                attentionNorm: try norm(try name(.attentionNorm), d),
                query: try matrix(try name(.query), c.queryDimension, d),
                key: try matrix(try name(.key), c.kvDimension, d),
                value: try matrix(try name(.value), c.kvDimension, d),
                output: try matrix(try name(.output), d, c.queryDimension),
                feedForwardNorm: try norm(try name(.feedForwardNorm), d),
                gate: try matrix(try name(.gate), c.feedForwardSize, d),
                up: try matrix(try name(.up), c.feedForwardSize, d),
                down: try matrix(try name(.down), d, c.feedForwardSize),
                queryBias: try optional(.queryBias) { try vector($0, c.queryDimension) },
                keyBias: try optional(.keyBias) { try vector($0, c.kvDimension) },
                valueBias: try optional(.valueBias) { try vector($0, c.kvDimension) },
                queryNorm: try optional(.queryNorm) { try norm($0, hd) },
                keyNorm: try optional(.keyNorm) { try norm($0, hd) },
                postAttentionNorm: try optional(.postAttentionNorm) { try norm($0, d) },
                postFeedForwardNorm: try optional(.postFeedForwardNorm) { try norm($0, d) }))
        }
        self.layers = layers
    }

    /// Loads a GGUF of any known family: configuration from `metadata`, tensors dequantized through
    /// ``TensorFile/floats(_:)`` (which yields [out, in] row-major values).
    /// - Throws: ``InferenceError`` for bad metadata or shapes, ``TensorFileError`` from the file.
    public init(gguf file: any TensorFile, metadata: [String: MetadataValue]) throws {
        let configuration = try ModelConfiguration(ggufMetadata: metadata)
        try self.init(configuration: configuration, naming: .gguf) { name in
            guard let info = file.tensor(named: name) else { return nil }
            return (info.shape, try file.floats(info))
        }
    }

    /// Loads an HF checkpoint (a folder's safetensors, fp32/fp16/bf16) with its flattened config.json.
    /// - Throws: ``InferenceError`` for an unsupported or inconsistent config or shapes,
    ///   ``TensorFileError`` from the files.
    public init(huggingFace file: any TensorFile, config: [String: MetadataValue]) throws {
        let configuration = try ModelConfiguration(huggingFaceConfig: config)
        let tied = config["tie_word_embeddings"]?.boolValue
        try self.init(configuration: configuration, naming: .huggingFace) { name in
            guard let info = file.tensor(named: name) else {
                if name == TensorNaming.huggingFace.outputHead, tied == false {
                    throw InferenceError.invalidWeight(name: name, detail: "missing while tie_word_embeddings is false")
                }
                return nil
            }
            return (info.shape, try file.floats(info))
        }
    }
}
