import Foundation
import TensorFiles

/// Model file hashes cached by file identity (absolute path, device, inode, size, modification
/// time) under `$XDG_CACHE_HOME/kvscope/sha256` (default `~/.cache/kvscope/sha256`), so a model is
/// hashed once until it changes.
public enum ModelHashCache {
    /// The cache directory for an environment.
    public static func directory(environment: [String: String]) -> String {
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.cache")
        return base + "/kvscope/sha256"
    }

    /// The SHA-256 of the model at `path` (``TensorFiles/ModelFiles/sha256(_:)``: a file, or a checkpoint
    /// folder's files), from the cache when its identity is unchanged.
    /// - Parameter useCache: read and write the cache (false always hashes).
    /// - Throws: ``TensorFiles/TensorFileError`` when the file cannot be read. Cache failures are ignored.
    public static func sha256(ofFile path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                              useCache: Bool = true) throws -> String {
        let key = SHA256.hex(Array(try ModelFiles.identityKey(path).utf8))
        let dir = directory(environment: environment)
        let entry = dir + "/" + key
        if useCache, let data = FileManager.default.contents(atPath: entry),
           let text = String(data: data, encoding: .utf8), KVScopeConfig.isHexDigest(text) {
            return text
        }
        let digest = try ModelFiles.sha256(path)
        if useCache {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            if let writer = try? AtomicFileWriter(path: entry, overwrite: true) {
                try? writer.write(Array(digest.utf8))
                try? writer.commit()
            }
        }
        return digest
    }
}
