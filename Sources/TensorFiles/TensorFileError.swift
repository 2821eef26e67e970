/// An error reading or writing a tensor file: which file, what is wrong, and where.
///
/// Its description is the one line kvscope prints after `kvscope: error: `.
public struct TensorFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file, as the user named it.
    public var path: String
    /// What is wrong, e.g. "truncated: need 8 bytes".
    public var message: String
    /// Where: an offset, a tensor name or a metadata key; empty when the whole file is meant.
    public var location: String

    public init(path: String, _ message: String, at location: String = "") {
        self.path = path
        self.message = message
        self.location = location
    }

    public var description: String {
        location.isEmpty ? "\(path): \(message)" : "\(path): \(message) (\(location))"
    }
}
