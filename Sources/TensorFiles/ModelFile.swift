import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The container formats kvscope reads.
public enum ModelFileFormat: String, Sendable {
    case gguf, safetensors, npy
}

/// An opened model file with its metadata and catalog.
public struct OpenedModel: Sendable {
    /// The tensor file (lazy: headers parsed, data untouched).
    public let file: any TensorFile
    public let format: ModelFileFormat
    /// GGUF metadata, or the flattened config.json found beside a safetensors file or in a
    /// checkpoint folder (empty when there is none), as given to the catalog.
    public let metadata: [String: MetadataValue]
    /// The architecture and the (layer, role) of every tensor.
    public let catalog: ModelCatalog
    /// The config.json that was read, if any (always set for a checkpoint folder).
    public let configPath: String?
}

/// Opening model files by content.
public enum ModelFiles {
    /// Opens a GGUF file and returns it with its metadata.
    public typealias GGUFOpener = @Sendable (String) throws -> (file: any TensorFile, metadata: [String: MetadataValue])

    /// How GGUF files are opened.
    /// Long arrays (the tokenizer vocabulary) are left out of the returned metadata; the tokenizer
    /// reads them from the ``GGUFFile`` itself.
    public static let ggufOpener: GGUFOpener? = { let f = try GGUFFile(path: $0); return (f, f.compactMetadata()) }

    /// Detects the format from the first bytes (GGUF and npy magic), then the extension.
    /// - Throws: ``TensorFileError`` when the format is none of GGUF, safetensors and npy.
    public static func detectFormat(_ file: MappedFile) throws -> ModelFileFormat {
        let b = file.bytes
        if b.count >= 4, b[0] == 0x47, b[1] == 0x47, b[2] == 0x55, b[3] == 0x46 { return .gguf }  // "GGUF"
        if b.count >= 6, NpyFile.magic.indices.allSatisfy({ b[$0] == NpyFile.magic[$0] }) { return .npy }
        if file.path.hasSuffix(".safetensors") { return .safetensors }
        // A safetensors header: 8-byte length, then '{'.
        if b.count >= 10, b[8] == UInt8(ascii: "{") { return .safetensors }
        if file.path.hasSuffix(".npy") { return .npy }
        if file.path.hasSuffix(".gguf") { return .gguf }
        throw TensorFileError(path: file.path, "unrecognized format: not GGUF, safetensors or npy", at: "offset 0")
    }

    /// Opens a tensor file of any supported format, by content.
    /// - Throws: ``TensorFileError`` for an unreadable or malformed file.
    /// A directory is opened as a ``CheckpointFolder`` (format `.safetensors`, metadata its config.json).
    public static func openTensorFile(path: String) throws -> (file: any TensorFile, format: ModelFileFormat, metadata: [String: MetadataValue]) {
        if isDirectory(path) {
            let folder = try CheckpointFolder(directory: path)
            return (folder, .safetensors, folder.config)
        }
        let mapped = try MappedFile(path: path)
        switch try detectFormat(mapped) {
        case .gguf:
            guard let opener = ggufOpener else {
                throw TensorFileError(path: path, "GGUF files are not supported by this build")
            }
            let (f, md) = try opener(path)
            return (f, .gguf, md)
        case .safetensors:
            let f = try SafeTensorsFile(file: mapped)
            return (f, .safetensors, [:])
        case .npy:
            return (try NpyFile(file: mapped), .npy, [:])
        }
    }

    /// Reads a config.json into flattened metadata.
    /// - Throws: ``TensorFileError`` for unreadable or invalid JSON, or JSON that is not an object.
    public static func readConfig(path: String) throws -> [String: MetadataValue] {
        let mapped = try MappedFile(path: path)
        return try parseConfig(mapped.bytes, path: path)
    }

    /// Parses config.json bytes into flattened metadata (``JSONValue/flattenedMetadata(prefix:)``).
    /// - Parameters:
    ///   - bytes: the JSON text.
    ///   - path: the file named in errors.
    /// - Throws: ``TensorFileError`` for invalid JSON, or JSON that is not an object.
    public static func parseConfig(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [String: MetadataValue] {
        let json = try JSONParser.parse(bytes, path: path)
        guard case .object = json else { throw TensorFileError(path: path, "config is not a JSON object") }
        return json.flattenedMetadata()
    }

    /// The files that make up a model at `path`: the file itself, or for a checkpoint folder its
    /// `.json` and `.safetensors` files (config, index, shards, tokenizer), sorted by name.
    /// - Throws: ``TensorFileError`` when a folder cannot be listed.
    public static func contentFiles(_ path: String) throws -> [String] {
        guard isDirectory(path) else { return [path] }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw TensorFileError(path: path, "cannot list the checkpoint folder")
        }
        let base = path.hasSuffix("/") ? path : path + "/"
        return names.filter { !$0.hasPrefix(".") && ($0.hasSuffix(".json") || $0.hasSuffix(".safetensors")) }
            .sorted().map { base + $0 }
    }

    /// A string that changes when the model at `path` changes: absolute path, device, inode, size
    /// and modification time of each of its ``contentFiles(_:)``.
    /// - Throws: ``TensorFileError`` when a file cannot be opened.
    public static func identityKey(_ path: String) throws -> String {
        try contentFiles(path).map { file in
            let id = try MappedFile(path: file).identity
            let absolute = URL(fileURLWithPath: file).standardizedFileURL.path
            return "\(absolute)|\(id.device)|\(id.inode)|\(id.size)|\(id.modificationTimeNanoseconds)"
        }.joined(separator: "\n")
    }

    /// The SHA-256 of a model: of its file, or for a checkpoint folder of the lines
    /// "NAME SHA256\n" of its ``contentFiles(_:)`` (so any changed shard, index, config or tokenizer changes it).
    /// - Throws: ``TensorFileError`` when a file cannot be read.
    public static func sha256(_ path: String) throws -> String {
        guard isDirectory(path) else { return try SHA256.hex(fileAt: path) }
        var lines = ""
        for file in try contentFiles(path) {
            lines += "\(URL(fileURLWithPath: file).lastPathComponent) \(try SHA256.hex(fileAt: file))\n"
        }
        return SHA256.hex(Array(lines.utf8))
    }

    /// Whether `path` names a directory (a checkpoint folder); false when it does not exist.
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

/// Opens a model (GGUF, safetensors or npy, picked by content) and catalogs its tensors.
///
/// For safetensors, `config.json` in the same directory supplies the hyper-parameters. A directory is
/// opened as a Hugging Face checkpoint folder (``CheckpointFolder``: config.json plus one or several
/// safetensors shards); its metadata is the flattened config.json.
/// - Throws: ``TensorFileError`` naming the file and what is wrong.
public func openModel(path: String) throws -> OpenedModel {
    let (file, format, fileMetadata) = try ModelFiles.openTensorFile(path: path)
    var metadata = fileMetadata
    var configPath: String?
    if let folder = file as? CheckpointFolder {
        configPath = folder.configPath
    } else if format == .safetensors {
        let dir = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        let candidate = dir + "config.json"
        if access(candidate, F_OK) == 0 {
            metadata = try ModelFiles.readConfig(path: candidate)
            configPath = candidate
        }
    }
    let catalog = try ModelCatalog(tensors: file.tensors, metadata: metadata, path: path)
    return OpenedModel(file: file, format: format, metadata: metadata, catalog: catalog, configPath: configPath)
}
