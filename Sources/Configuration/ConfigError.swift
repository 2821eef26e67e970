/// A config file problem: the file, the exact entry (e.g. `kv_cache.layers[12].k.rank`) and what is wrong.
///
/// Described as `FILE: ENTRY: MESSAGE`, e.g.
/// `cfg.json: kv_cache.layers[12].k.rank: 300 exceeds d_kv 192`.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The config (or output) file; empty when the config is not tied to a file.
    public var path: String
    /// The dotted entry path inside the document, e.g. `weights.layers[3].bits`; empty for the whole file.
    public var entry: String
    /// What is wrong with it.
    public var message: String

    /// An error about `entry` of `path`.
    public init(path: String = "", entry: String = "", _ message: String) {
        self.path = path
        self.entry = entry
        self.message = message
    }

    /// `ENTRY: MESSAGE`, without the file.
    public var entryDescription: String { entry.isEmpty ? message : "\(entry): \(message)" }

    public var description: String { path.isEmpty ? entryDescription : "\(path): \(entryDescription)" }

    /// The same error attributed to `path`.
    func at(path: String) -> ConfigError { ConfigError(path: path, entry: entry, message) }
}
