import LinearAlgebra
import TensorFiles

/// One transformer block's weights, matrices in [out, in] order as ``TensorInfo/shape`` gives them.
public struct LlamaLayerWeights: Sendable {
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

    public init(attentionNorm: [Float], query: Matrix, key: Matrix, value: Matrix, output: Matrix,
                feedForwardNorm: [Float], gate: Matrix, up: Matrix, down: Matrix) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.feedForwardNorm = feedForwardNorm
        self.gate = gate
        self.up = up
        self.down = down
    }
}

/// The float32 weights of a llama-family model, as the forward pass reads them.
///
/// Loaders (GGUF, safetensors, raw test files) dequantize once and hand over plain matrices.
public protocol LlamaWeights: Sendable {
    /// Sizes, constants and the RoPE pairing of the stored Q/K rows.
    var configuration: LlamaConfiguration { get }
    /// Token embeddings [vocab, d].
    var tokenEmbedding: Matrix { get }
    /// Final RMSNorm weight [d].
    var outputNorm: [Float] { get }
    /// Output head [vocab, d]; the token embedding when the model ties them.
    var outputHead: Matrix { get }
    /// The blocks, first to last.
    var layers: [LlamaLayerWeights] { get }
}

/// Tensor names of a llama checkpoint.
public enum LlamaTensorNaming: Sendable {
    /// llama.cpp names: `token_embd.weight`, `blk.N.attn_q.weight`, …, `output_norm.weight`, `output.weight`.
    case gguf
    /// HF transformers names: `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, …, `lm_head.weight`.
    case huggingFace

    /// The name of the token embedding, final norm and output head.
    public var tokenEmbedding: String { self == .gguf ? "token_embd.weight" : "model.embed_tokens.weight" }
    public var outputNorm: String { self == .gguf ? "output_norm.weight" : "model.norm.weight" }
    public var outputHead: String { self == .gguf ? "output.weight" : "lm_head.weight" }

    /// The name of a block's tensor by role (q, k, v, o, gate, up, down, attn_norm, ffn_norm).
    public func layerTensor(_ layer: Int, _ role: LayerTensorRole) -> String {
        switch self {
        case .gguf:
            let suffix: String
            switch role {
            case .attentionNorm: suffix = "attn_norm"
            case .query: suffix = "attn_q"
            case .key: suffix = "attn_k"
            case .value: suffix = "attn_v"
            case .output: suffix = "attn_output"
            case .feedForwardNorm: suffix = "ffn_norm"
            case .gate: suffix = "ffn_gate"
            case .up: suffix = "ffn_up"
            case .down: suffix = "ffn_down"
            }
            return "blk.\(layer).\(suffix).weight"
        case .huggingFace:
            let suffix: String
            switch role {
            case .attentionNorm: suffix = "input_layernorm"
            case .query: suffix = "self_attn.q_proj"
            case .key: suffix = "self_attn.k_proj"
            case .value: suffix = "self_attn.v_proj"
            case .output: suffix = "self_attn.o_proj"
            case .feedForwardNorm: suffix = "post_attention_layernorm"
            case .gate: suffix = "mlp.gate_proj"
            case .up: suffix = "mlp.up_proj"
            case .down: suffix = "mlp.down_proj"
            }
            return "model.layers.\(layer).\(suffix).weight"
        }
    }

    /// The weights of a transformer block by role.
    public enum LayerTensorRole: CaseIterable, Sendable {
        case attentionNorm, query, key, value, output, feedForwardNorm, gate, up, down
    }
}

/// Dense float32 llama weights held in memory (dequantized once at load).
public struct DenseLlamaWeights: LlamaWeights {
    public let configuration: LlamaConfiguration
    public let tokenEmbedding: Matrix
    public let outputNorm: [Float]
    public let outputHead: Matrix
    public let layers: [LlamaLayerWeights]

    /// Loads every tensor through `tensor`, which returns a tensor's shape ([out, in], PyTorch order)
    /// and row-major values, or nil when the file has no tensor of that name.
    ///
    /// A missing output head means tied embeddings.
    /// - Throws: ``InferenceError/invalidWeight(name:detail:)`` for a missing tensor or a wrong shape,
    ///   and whatever `tensor` throws.
    public init(configuration c: LlamaConfiguration, naming: LlamaTensorNaming,
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
            return t
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> Matrix {
            try Matrix(rows: rows, cols: cols, storage: load(name, [rows, cols]).values)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] { try load(name, [n]).values }

        let d = c.hiddenSize
        configuration = c
        tokenEmbedding = try matrix(naming.tokenEmbedding, c.vocabularySize, d)
        outputNorm = try vector(naming.outputNorm, d)
        if let head = try tensor(naming.outputHead) {
            let t = try checked(naming.outputHead, head, [c.vocabularySize, d])
            outputHead = try Matrix(rows: c.vocabularySize, cols: d, storage: t.values)
        } else {
            outputHead = tokenEmbedding
        }
        var layers = [LlamaLayerWeights]()
        for i in 0..<c.layerCount {
            func name(_ role: LlamaTensorNaming.LayerTensorRole) -> String { naming.layerTensor(i, role) }
            layers.append(LlamaLayerWeights(
                attentionNorm: try vector(name(.attentionNorm), d),
                query: try matrix(name(.query), c.queryDimension, d),
                key: try matrix(name(.key), c.kvDimension, d),
                value: try matrix(name(.value), c.kvDimension, d),
                output: try matrix(name(.output), d, c.queryDimension),
                feedForwardNorm: try vector(name(.feedForwardNorm), d),
                gate: try matrix(name(.gate), c.feedForwardSize, d),
                up: try matrix(name(.up), c.feedForwardSize, d),
                down: try matrix(name(.down), d, c.feedForwardSize)))
        }
        self.layers = layers
    }

    /// Loads a llama GGUF: configuration from `metadata`, tensors dequantized through
    /// ``TensorFile/floats(_:)`` (which yields [out, in] row-major values).
    /// - Throws: ``InferenceError`` for bad metadata or shapes, ``TensorFileError`` from the file.
    public init(gguf file: any TensorFile, metadata: [String: MetadataValue]) throws {
        let configuration = try LlamaConfiguration(ggufMetadata: metadata)
        try self.init(configuration: configuration, naming: .gguf) { name in
            guard let info = file.tensor(named: name) else { return nil }
            return (info.shape, try file.floats(info))
        }
    }
}
