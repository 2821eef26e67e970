import Foundation
import Quantization
import TensorFiles

/// The on-disk cache of weight-quantization error tables (``Quantization/ErrorTable``), a
/// ``CacheDirectory`` under `$XDG_CACHE_HOME/kvscope/weight-errors`: one file per model file (its
/// SHA-256) and grid of choices, holding the tables of every matrix computed so far.
///
/// Format, version 1: one line of JSON, the header `{"format": "kvscope-weight-errors",
/// "version": 1, "key": KEY, "payload_bytes": N, "payload_sha256": HEX}`, then the payload, the
/// tables as a JSON array (``Quantization/ErrorTableCache/encoded()``'s form). A file is used only
/// when its header names this format, version and key, the payload has that length and SHA-256,
/// and every table has this grid, finite non-negative figures, a unique name and (when shapes are
/// given) the model's shape; anything else is a miss, recomputed and replaced by the caller.
public struct WeightErrorCache: Sendable {
    /// The header's `format`.
    public static let formatName = "kvscope-weight-errors"
    /// The layout version this code reads and writes (part of the key: a new layout misses old files).
    public static let formatVersion = 1

    /// The cache directory.
    public var directory: URL { files.directory }
    private let files: CacheDirectory

    /// A cache in `directory`.
    public init(directory: URL) { files = CacheDirectory(directory: directory) }

    /// `$XDG_CACHE_HOME/kvscope/weight-errors`, or `~/.cache/kvscope/weight-errors`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        CacheDirectory.defaultDirectory("weight-errors", environment: environment)
    }

    /// The key of a model file and grid: the format and version, the file's SHA-256 and the grid
    /// spelled out (bits, groups, outlier fractions, mode).
    public static func key(modelSHA256: String, choices: ErrorTableChoices) -> String {
        let bits = choices.bits.map(String.init).joined(separator: ",")
        let groups = choices.groupSizes.map { $0.map(String.init) ?? "row" }.joined(separator: ",")
        let outliers = choices.outlierFractions.map { "\($0)" }.joined(separator: ",")
        return "\(formatName) v\(formatVersion)|\(modelSHA256)|bits \(bits)|groups \(groups)|outliers \(outliers)|\(choices.mode.rawValue)"
    }

    /// The file of a model and grid.
    public func fileURL(modelSHA256: String, choices: ErrorTableChoices) -> URL {
        files.fileURL(key: Self.key(modelSHA256: modelSHA256, choices: choices), extension: "json")
    }

    struct Header: Codable, Equatable {
        var format: String
        var version: Int
        var key: String
        var payload_bytes: Int
        var payload_sha256: String
    }

    /// The cached tables of a model and grid, or nil when the file is absent or fails any check.
    /// - Parameter shapes: the model's matrix shapes by name ([out, in]); a table of another shape
    ///   or of a matrix not listed makes the whole file a miss.
    public func load(modelSHA256: String, choices: ErrorTableChoices,
                     shapes: [String: (rows: Int, cols: Int)]? = nil) -> [ErrorTable]? {
        guard let data = FileManager.default.contents(atPath: fileURL(modelSHA256: modelSHA256, choices: choices).path) else {
            return nil
        }
        return Self.decode([UInt8](data), key: Self.key(modelSHA256: modelSHA256, choices: choices), choices: choices, shapes: shapes)
    }

    /// Stores the tables of a model and grid (atomically, replacing an older file).
    /// - Throws: ``TensorFiles/TensorFileError`` for I/O errors; `EncodingError`.
    public func store(_ tables: [ErrorTable], modelSHA256: String, choices: ErrorTableChoices) throws {
        let bytes = try Self.encode(tables, key: Self.key(modelSHA256: modelSHA256, choices: choices))
        try files.store(bytes, at: fileURL(modelSHA256: modelSHA256, choices: choices))
    }

    static func encode(_ tables: [ErrorTable], key: String) throws -> [UInt8] {
        let payload = [UInt8](try JSONEncoder().encode(tables.sorted { $0.name < $1.name }))
        let header = Header(format: formatName, version: formatVersion, key: key, payload_bytes: payload.count,
                            payload_sha256: SHA256.hex(payload))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(header)) + [0x0A] + payload
    }

    static func decode(_ bytes: [UInt8], key: String, choices: ErrorTableChoices,
                       shapes: [String: (rows: Int, cols: Int)]?) -> [ErrorTable]? {
        guard let newline = bytes.firstIndex(of: 0x0A),
              let header = try? JSONDecoder().decode(Header.self, from: Data(bytes[..<newline])),
              header.format == formatName, header.version == formatVersion, header.key == key else { return nil }
        let payload = Array(bytes[(newline + 1)...])
        guard payload.count == header.payload_bytes, SHA256.hex(payload) == header.payload_sha256,
              let tables = try? JSONDecoder().decode([ErrorTable].self, from: Data(payload)) else { return nil }
        var names = Set<String>()
        for t in tables {
            guard names.insert(t.name).inserted, t.choices == choices, t.rows >= 1, t.cols >= 1,
                  t.relativeErrors.count == choices.count, t.bytes.count == choices.count,
                  t.outputErrors.map({ $0.count == choices.count }) ?? true,
                  t.weightNormSquared.isFinite, t.weightNormSquared >= 0,
                  (t.relativeErrors + t.bytes + (t.outputErrors ?? [])).allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
            if let shapes {
                guard let shape = shapes[t.name], shape.rows == t.rows, shape.cols == t.cols else { return nil }
            }
        }
        return tables
    }
}
