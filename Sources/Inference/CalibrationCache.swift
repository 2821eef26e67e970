import Foundation
import KVCompression
import TensorFiles

/// The on-disk cache of calibration statistics: one file per model and text (DESIGN.md §4), under
/// `$XDG_CACHE_HOME/kvscope/calibration` (default `~/.cache/kvscope/calibration`).
///
/// A file's name is the SHA-256 of the model identity (path, device, inode, size, modification
/// time), the text's SHA-256 and the capture settings, so an edited model or text misses the cache.
public struct CalibrationCache: Sendable {
    /// The cache directory.
    public let directory: URL

    /// A cache in `directory`.
    public init(directory: URL) { self.directory = directory }

    /// `$XDG_CACHE_HOME/kvscope/calibration`, or `~/.cache/kvscope/calibration`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        SpectrumCache.defaultDirectory(environment: environment).deletingLastPathComponent()
            .appendingPathComponent("calibration")
    }

    /// The identity string of a model file: absolute path and file identity.
    /// - Throws: ``TensorFileError`` when the file cannot be opened.
    public static func modelIdentity(path: String) throws -> String {
        let id = try MappedFile(path: path).identity
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return "\(absolute)|\(id.device)|\(id.inode)|\(id.size)|\(id.modificationTimeNanoseconds)"
    }

    /// The file that holds the statistics of (model, text, settings).
    public func fileURL(modelIdentity: String, textSHA256: String, sampleCount: Int, seed: UInt64,
                        maxSequenceLength: Int) -> URL {
        let key = "v\(CalibrationStatistics.formatVersion)|\(modelIdentity)|\(textSHA256)|\(sampleCount)|\(seed)|\(maxSequenceLength)"
        return directory.appendingPathComponent(SHA256.hex(Array(key.utf8)) + ".safetensors")
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
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorFileError(path: directory.path, "cannot create the cache directory (\((error as NSError).localizedDescription))")
        }
        try CalibrationFile.write(statistics, to: url.path, provenance: provenance, overwrite: true)
    }
}
