import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// A text read verbatim for perplexity or calibration (DESIGN.md §4): its bytes, its SHA-256 and
/// its name. A trailing newline is part of the text.
public struct CalibrationText: Sendable {
    /// The file name (informative).
    public let name: String
    /// The text.
    public let text: String
    /// Lower-case hex SHA-256 of the file's bytes.
    public let sha256: String

    /// Reads a UTF-8 text file verbatim.
    /// - Throws: ``TensorFileError`` when the file is missing, unreadable or not valid UTF-8.
    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TensorFileError(path: path, "cannot read the text file (\((error as NSError).localizedDescription))")
        }
        let bytes = [UInt8](data)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw TensorFileError(path: path, "the text is not valid UTF-8")
        }
        self.init(name: URL(fileURLWithPath: path).lastPathComponent, text: text, sha256: SHA256.hex(bytes))
    }

    /// A text held in memory; its hash is that of its UTF-8 bytes.
    public init(name: String, text: String) {
        self.init(name: name, text: text, sha256: SHA256.hex(Array(text.utf8)))
    }

    private init(name: String, text: String, sha256: String) {
        self.name = name
        self.text = text
        self.sha256 = sha256
    }
}

/// Runs a model over a text and streams every layer's activations into a
/// ``KVCompression/CalibrationAccumulator`` (DESIGN.md §4, "Calibration statistics").
public enum CalibrationCapture {
    /// The default longest sequence prefilled at once; longer texts are split.
    public static let defaultMaxSequenceLength = 2048

    /// The token sequences a text is run as: the whole text when it fits, else consecutive
    /// independent pieces of at most `maxSequenceLength` tokens (each with BOS when the tokenizer adds one).
    public static func sequences(tokenizer: Tokenizer, text: String, maxSequenceLength: Int) -> [[Int32]] {
        let all = tokenizer.encode(text)
        let limit = max(maxSequenceLength, 2)
        guard all.count > limit else { return [all] }
        var body = all[...]
        var bos: [Int32] = []
        if tokenizer.addsBOS, let first = all.first, first == tokenizer.bosTokenID {
            bos = [first]
            body = all.dropFirst()
        }
        var out: [[Int32]] = []
        let step = limit - bos.count
        var start = body.startIndex
        while start < body.endIndex {
            let end = min(start + step, body.endIndex)
            out.append(bos + body[start..<end])
            start = end
        }
        return out
    }

    /// Calibration statistics of `model` on `text`.
    ///
    /// Per layer: XᵀX and mean|x| of the attention input (and with `inputMoments` of the attention
    /// output and the MLP input too, for weight sensitivity); pre-RoPE KᵀK, VᵀV and post-RoPE KᵀK
    /// (HF channel order); and `sampleCount` sampled token rows.
    /// - Parameters:
    ///   - maxSequenceLength: texts longer than this many tokens run as independent sequences
    ///     (recorded in the provenance).
    ///   - progress: (sequences·layers done, total).
    /// - Throws: ``InferenceError/cancelled``, forward-pass and accumulator errors.
    public static func run(model: TransformerModel, tokenizer: Tokenizer, text: CalibrationText,
                           sampleCount: Int = 512, seed: UInt64 = 0,
                           maxSequenceLength: Int = defaultMaxSequenceLength, inputMoments: Bool = false,
                           progress: ((Int, Int) -> Void)? = nil,
                           cancellation: CancellationFlag? = nil) throws -> (statistics: CalibrationStatistics,
                                                                             provenance: CalibrationFile.Provenance) {
        let pieces = sequences(tokenizer: tokenizer, text: text.text, maxSequenceLength: maxSequenceLength)
        return try run(model: model, sequences: pieces, textSHA256: text.sha256, textName: text.name,
                       sampleCount: sampleCount, seed: seed, maxSequenceLength: maxSequenceLength,
                       inputMoments: inputMoments, progress: progress, cancellation: cancellation)
    }

    /// Calibration statistics of `model` over token sequences already split (see
    /// ``sequences(tokenizer:text:maxSequenceLength:)``), summed in order as one text.
    /// - Throws: as ``run(model:tokenizer:text:sampleCount:seed:maxSequenceLength:inputMoments:progress:cancellation:)``.
    public static func run(model: TransformerModel, sequences pieces: [[Int32]], textSHA256: String, textName: String,
                           sampleCount: Int = 512, seed: UInt64 = 0,
                           maxSequenceLength: Int = defaultMaxSequenceLength, inputMoments: Bool = false,
                           progress: ((Int, Int) -> Void)? = nil,
                           cancellation: CancellationFlag? = nil) throws -> (statistics: CalibrationStatistics,
                                                                             provenance: CalibrationFile.Provenance) {
        let c = model.configuration
        guard pieces.contains(where: { !$0.isEmpty }) else {
            throw InferenceError.invalidPolicy("the calibration text \(textName) has no tokens")
        }
        var accumulator = try CalibrationAccumulator(layerCount: c.layerCount, hiddenSize: c.hiddenSize,
                                                     kvSize: c.kvDimension, sampleCount: sampleCount, seed: seed)
        let total = pieces.count * c.layerCount
        for (index, piece) in pieces.enumerated() where !piece.isEmpty {
            _ = try model.hiddenStates(
                tokens: piece,
                observer: { capture in
                    try accumulator.addAttention(layer: capture.layer, inputs: capture.attentionInput, keys: capture.keys,
                                                 values: capture.values, keysPostRoPE: capture.rotatedKeys)
                    if inputMoments {
                        try accumulator.addInput(.attentionOutput, layer: capture.layer, rows: capture.attentionOutput)
                        try accumulator.addInput(.ffnInput, layer: capture.layer, rows: capture.feedForwardInput)
                    }
                },
                progress: { done, _ in progress?(index * c.layerCount + done, total) },
                cancellation: cancellation)
        }
        let statistics = try accumulator.finalize(textSHA256: textSHA256)
        let provenance = CalibrationFile.Provenance(
            textName: textName, sampleSeed: seed, sequenceLength: pieces.count > 1 ? maxSequenceLength : 0,
            sequenceCount: pieces.count)
        return (statistics, provenance)
    }
}
