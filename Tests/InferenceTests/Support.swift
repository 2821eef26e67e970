import Foundation
import Inference
import LinearAlgebra
import TensorFiles

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// A file under the repository root.
func repositoryFile(_ relativePath: String) -> URL { repositoryRoot.appendingPathComponent(relativePath) }

/// Reads a golden JSON file under Tests/Golden.
func golden<T: Decodable>(_ relativePath: String, as: T.Type) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(contentsOf: repositoryFile("Tests/Golden/" + relativePath)))
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
}

let smolLM2Path = repositoryFile("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path

/// The SmolLM2 GGUF's tokenizer metadata.
///
/// Until the GGUF reader is merged this reads the JSON dump that Tests/Reference/tokenizer_golden.py
/// writes next to the goldens (git-ignored, ~1.2 MB).
/// SmolLM2's metadata, tokenizer arrays included, from kvscope's GGUF reader.
func smolLM2Metadata() throws -> [String: MetadataValue] {
    try GGUFFile(path: smolLM2Path).metadata
}

/// max |a − b| / max |b| over two equally long vectors.
func relativeMaxError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in a.indices {
        num = max(num, Double(abs(a[i] - b[i])))
        den = max(den, Double(abs(b[i])))
    }
    return den == 0 ? num : num / den
}

/// A model written as raw little-endian float32 files plus a JSON manifest (Tests/Reference/llama_reference.py).
struct RawModelManifest: Decodable {
    struct Config: Decodable {
        var n_layers: Int, hidden_size: Int, n_heads: Int, n_kv_heads: Int, head_dim: Int
        var ffn_size: Int, vocab_size: Int, rms_eps: Double, rope_theta: Double
    }
    struct Entry: Decodable {
        var file: String
        var shape: [Int]
    }
    var config: Config
    var tensors: [String: Entry]
}

/// Loads a raw float32 model directory into ``DenseModelWeights`` with GGUF tensor names.
func loadRawModel(_ directory: URL, style: RopeStyle) throws -> DenseModelWeights {
    let manifest = try JSONDecoder().decode(
        RawModelManifest.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
    let c = manifest.config
    let configuration = try ModelConfiguration(
        layerCount: c.n_layers, hiddenSize: c.hidden_size, headCount: c.n_heads, kvHeadCount: c.n_kv_heads,
        headDimension: c.head_dim, feedForwardSize: c.ffn_size, vocabularySize: c.vocab_size,
        rmsNormEpsilon: Float(c.rms_eps), ropeTheta: c.rope_theta, ropeStyle: style)
    return try DenseModelWeights(configuration: configuration, naming: .gguf) { name in
        guard let entry = manifest.tensors[name] else { return nil }
        let data = try Data(contentsOf: directory.appendingPathComponent(entry.file))
        var values = [Float](repeating: 0, count: data.count / 4)
        _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0) }  // little-endian host
        return (entry.shape, values)
    }
}

/// max |a − b| / max |b|.
func relativeMaxError(_ a: Matrix, _ b: [Float]) -> Double { relativeMaxError(a.storage, b) }

/// SmolLM2's dequantized weights.
///
/// Until the GGUF reader is merged this reads the raw float32 dump that
/// `python3 Tests/Reference/llama_reference.py --dump-weights .build-ref/smollm2` writes (GGUF order,
/// dequantized by gguf-py; git-ignored, ~520 MB).
/// SmolLM2's weights, dequantized once by kvscope's GGUF reader.
func loadSmolLM2Weights() throws -> DenseModelWeights {
    let file = try GGUFFile(path: smolLM2Path)
    return try DenseModelWeights(gguf: file, metadata: file.metadata)
}
