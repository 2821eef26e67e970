import Foundation
import KVCompression
import TensorFiles

/// A folder of kvscope's derived-data cache, `$XDG_CACHE_HOME/kvscope/NAME` (default
/// `~/.cache/kvscope/NAME`): one file per key, named by the SHA-256 of the key, written atomically
/// (temporary file + rename, ``TensorFiles/AtomicFileWriter``). Readers treat a file that does not
/// read back and check out as a miss, so a damaged entry is recomputed and replaced, never trusted.
/// The calibration statistics (``CalibrationCache``) and the weight error tables
/// (``WeightErrorCache``) are kept this way.
public struct CacheDirectory: Sendable {
    /// The folder.
    public let directory: URL

    /// A cache in `directory` (created on the first store).
    public init(directory: URL) { self.directory = directory }

    /// `$XDG_CACHE_HOME/kvscope/NAME`, or `~/.cache/kvscope/NAME`.
    public static func defaultDirectory(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        SpectrumCache.defaultDirectory(environment: environment).deletingLastPathComponent().appendingPathComponent(name)
    }

    /// The file that holds `key`: its SHA-256 in hex, then `.EXTENSION`.
    public func fileURL(key: String, extension ext: String) -> URL {
        directory.appendingPathComponent(SHA256.hex(Array(key.utf8)) + "." + ext)
    }

    /// Creates the folder when missing.
    /// - Throws: ``TensorFiles/TensorFileError`` naming the folder.
    public func create() throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorFileError(path: directory.path, "cannot create the cache directory (\((error as NSError).localizedDescription))")
        }
    }

    /// Writes `bytes` to `url` atomically, replacing an older entry.
    /// - Throws: ``TensorFiles/TensorFileError`` for I/O errors.
    public func store(_ bytes: [UInt8], at url: URL) throws {
        try create()
        let writer = try AtomicFileWriter(path: url.path, overwrite: true)
        try writer.write(bytes)
        try writer.commit()
    }
}

/// The on-disk cache of calibration statistics: one file per model and text (DESIGN.md §4), under
/// `$XDG_CACHE_HOME/kvscope/calibration` (default `~/.cache/kvscope/calibration`), a ``CacheDirectory``.
///
/// A file's name is the SHA-256 of the model identity (path, device, inode, size, modification
/// time), the text's SHA-256 and the capture settings, so an edited model or text misses the cache.
public struct CalibrationCache: Sendable {
    /// The cache directory.
    public var directory: URL { files.directory }
    private let files: CacheDirectory

    /// A cache in `directory`.
    public init(directory: URL) { files = CacheDirectory(directory: directory) }

    /// `$XDG_CACHE_HOME/kvscope/calibration`, or `~/.cache/kvscope/calibration`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        CacheDirectory.defaultDirectory("calibration", environment: environment)
    }

    /// The identity string of a model file: absolute path and file identity.
    /// - Throws: ``TensorFileError`` when the file cannot be opened.
    public static func modelIdentity(path: String) throws -> String {
        try ModelFiles.identityKey(path)
    }

    /// The file that holds the statistics of (model, text, settings).
    public func fileURL(modelIdentity: String, textSHA256: String, sampleCount: Int, seed: UInt64,
                        maxSequenceLength: Int) -> URL {
        let key = "v\(CalibrationStatistics.formatVersion)|\(modelIdentity)|\(textSHA256)|\(sampleCount)|\(seed)|\(maxSequenceLength)"
        return files.fileURL(key: key, extension: "safetensors")
    }

    /// The cached statistics, or nil when absent or unreadable (a damaged entry is a miss).
    public func load(_ url: URL, textSHA256: String) -> (statistics: CalibrationStatistics, provenance: CalibrationFile.Provenance)? {
        guard FileManager.default.fileExists(atPath: url.path),
              let loaded = try? CalibrationFile.read(path: url.path),
              loaded.statistics.textSHA256 == textSHA256 else { return nil }
        return loaded
    }

    /// Stores statistics (atomically, replacing an older entry).
    /// - Throws: ``TensorFileError`` for I/O errors.
    public func store(_ statistics: CalibrationStatistics, provenance: CalibrationFile.Provenance, at url: URL) throws {
        try files.create()
        try CalibrationFile.write(statistics, to: url.path, provenance: provenance, overwrite: true)
    }
}
