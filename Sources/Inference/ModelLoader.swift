import Foundation
import TensorFiles

/// Loads an opened model for inference: a GGUF of a known family, or an HF checkpoint (a
/// safetensors file or folder with config.json and tokenizer.json beside it).
public enum ModelLoader {
    /// The family of `opened`, or why kvscope cannot run it (one line).
    static func resolve(_ opened: OpenedModel) -> Result<Architecture, TensorFileError> {
        func fail(_ why: String) -> Result<Architecture, TensorFileError> { .failure(TensorFileError(path: opened.file.path, why)) }
        switch opened.format {
        case .gguf:
            let name = opened.metadata["general.architecture"]?.stringValue ?? "?"
            return Architecture.gguf(name).map { .success($0) }
                ?? fail("\"\(name)\" is not a family kvscope runs (\(Architecture.knownNames))")
        case .safetensors:
            guard opened.configPath != nil else { return fail("inference needs config.json beside the safetensors weights") }
            let type = opened.metadata["model_type"]?.stringValue ?? "?"
            return Architecture.huggingFace(modelType: type).map { .success($0) }
                ?? fail("model_type \"\(type)\" is not a family kvscope runs (\(Architecture.knownNames))")
        case .npy:
            return fail("inference needs a GGUF model or an HF checkpoint")
        }
    }

    /// The family an opened model belongs to, or nil when kvscope cannot run it.
    public static func architecture(of opened: OpenedModel) -> Architecture? { try? resolve(opened).get() }

    /// Why `opened` cannot be run, in one line, or nil when it can.
    public static func unsupportedReason(_ opened: OpenedModel) -> String? {
        if case .failure(let e) = resolve(opened) { return e.message }
        return nil
    }

    /// The dense model and its tokenizer. GGUF: the tokenizer reads the file's full metadata (the
    /// opened model's is compact). HF: tokenizer.json beside config.json.
    /// - Throws: ``TensorFileError`` for unreadable files, ``InferenceError`` for an unsupported or
    ///   inconsistent model.
    public static func load(_ opened: OpenedModel) throws -> (model: TransformerModel, tokenizer: Tokenizer) {
        _ = try resolve(opened).get()
        switch opened.format {
        case .gguf:
            guard let gguf = opened.file as? GGUFFile else {
                throw TensorFileError(path: opened.file.path, "inference needs a GGUF model")
            }
            let metadata = gguf.metadata
            let weights = try DenseModelWeights(gguf: gguf, metadata: metadata)
            let tokenizer = try Tokenizer(metadata: metadata, addsBOSByDefault: weights.configuration.architecture.addsBOSByDefault)
            try checkVocabulary(tokenizer, weights.configuration, path: opened.file.path)
            return (try TransformerModel(weights: weights), tokenizer)
        case .safetensors, .npy:
            let weights = try DenseModelWeights(huggingFace: opened.file, config: opened.metadata)
            let dir = URL(fileURLWithPath: opened.configPath ?? opened.file.path).deletingLastPathComponent()
            let tokenizerPath = (opened.file as? CheckpointFolder)?.tokenizerPath
                ?? dir.appendingPathComponent("tokenizer.json").path
            guard FileManager.default.fileExists(atPath: tokenizerPath) else {
                throw TensorFileError(path: tokenizerPath, "missing: an HF checkpoint needs its tokenizer.json")
            }
            // BOS as the file's post-processor says (`tokenizers` adds none without one).
            let tokenizer = try Tokenizer(huggingFaceJSONAt: tokenizerPath)
            try checkVocabulary(tokenizer, weights.configuration, path: tokenizerPath)
            return (try TransformerModel(weights: weights), tokenizer)
        }
    }

    /// A tokenizer may have fewer tokens than the embedding has rows (padding), never more.
    static func checkVocabulary(_ tokenizer: Tokenizer, _ c: ModelConfiguration, path: String) throws {
        guard tokenizer.vocabularySize <= c.vocabularySize else {
            throw TensorFileError(path: path, "the tokenizer has \(tokenizer.vocabularySize) tokens, the model's embedding \(c.vocabularySize) rows")
        }
    }
}
