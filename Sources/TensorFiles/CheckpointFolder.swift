#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The shard index of a sharded Hugging Face checkpoint, `model.safetensors.index.json`:
/// `{"metadata": {"total_size": N, …}, "weight_map": {tensor name: shard file name}}`.
///
/// Parsing checks the index on its own (valid JSON, a `weight_map` of strings, shard names that are
/// plain `.safetensors` file names in the folder, a non-negative integer `total_size`);
/// ``CheckpointFolder`` checks it against the shards.
public struct CheckpointIndex: Sendable {
    /// The index's file name in a checkpoint folder.
    public static let fileName = "model.safetensors.index.json"

    /// One `weight_map` entry.
    public struct Entry: Sendable, Equatable {
        /// The tensor's name.
        public var tensor: String
        /// The shard file that holds it (a plain file name, no directory).
        public var shard: String
    }

    /// The file named in errors.
    public let path: String
    /// The `weight_map` entries in the index's order (tensor names are unique: the JSON parser
    /// rejects duplicate keys).
    public let weightMap: [Entry]
    /// The distinct shard file names, sorted.
    public let shardNames: [String]
    /// `metadata.total_size`: the bytes of all tensors, when the index says.
    public let totalSize: Int?
    /// The whole `metadata` object, flattened (empty when absent).
    public let metadata: [String: MetadataValue]
    private let shardOfTensor: [String: String]

    /// Parses an index from its bytes.
    /// - Parameters:
    ///   - bytes: the JSON text.
    ///   - path: the file named in errors.
    /// - Throws: ``TensorFileError`` for invalid JSON, a missing or malformed `weight_map`, a shard name
    ///   that is not a plain `.safetensors` file name, or a malformed `metadata.total_size`.
    public init(parsing bytes: UnsafeRawBufferPointer, path: String) throws {
        self.path = path
        let json = try JSONParser.parse(bytes, path: path)
        guard case .object = json else { throw TensorFileError(path: path, "index is not a JSON object") }
        guard let map = json["weight_map"] else { throw TensorFileError(path: path, "index has no weight_map") }
        guard case .object(let members) = map else {
            throw TensorFileError(path: path, "weight_map is not an object of tensor name → shard file", at: "weight_map")
        }
        guard !members.isEmpty else { throw TensorFileError(path: path, "weight_map lists no tensors", at: "weight_map") }
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        var shards = Set<String>()
        for (tensor, value) in members {
            guard case .string(let shard) = value else {
                throw TensorFileError(path: path, "weight_map value is not a string (a shard file name)", at: "tensor \(tensor)")
            }
            if !shards.contains(shard) {
                try Self.checkShardName(shard, path: path, tensor: tensor)
                shards.insert(shard)
            }
            entries.append(Entry(tensor: tensor, shard: shard))
        }
        weightMap = entries
        shardNames = shards.sorted()
        shardOfTensor = Dictionary(entries.map { ($0.tensor, $0.shard) }, uniquingKeysWith: { a, _ in a })

        var totalSize: Int?
        switch json["metadata"] {
        case nil, .null?:
            metadata = [:]
        case .object?:
            metadata = json["metadata"]?.flattenedMetadata() ?? [:]
            if let size = json["metadata"]?["total_size"] {
                guard case .number(let i, let d) = size, let n = i ?? (d.rounded() == d && d >= 0 && d < 9e15 ? Int(d) : nil),
                      n >= 0 else {
                    throw TensorFileError(path: path, "metadata.total_size is not a non-negative integer", at: "metadata.total_size")
                }
                totalSize = n
            }
        default:
            throw TensorFileError(path: path, "index metadata is not an object", at: "metadata")
        }
        self.totalSize = totalSize
    }

    /// Parses an index from its bytes.
    /// - Throws: ``TensorFileError`` as ``init(parsing:path:)-(UnsafeRawBufferPointer,_)``.
    public init(parsing bytes: [UInt8], path: String) throws {
        self = try bytes.withUnsafeBytes { try CheckpointIndex(parsing: $0, path: path) }
    }

    /// The shard the index maps `tensor` to.
    public func shard(of tensor: String) -> String? { shardOfTensor[tensor] }

    /// Accepts only a plain file name inside the folder: no path separator, not `.` or `..`, no NUL,
    /// ending in `.safetensors`. (A symlink of that name is followed: the Hugging Face hub cache
    /// links every snapshot file to a blob elsewhere.)
    static func checkShardName(_ name: String, path: String, tensor: String) throws {
        if name.contains("/") || name.contains("\\") {
            throw TensorFileError(path: path, "shard name \(JSONEncoding.quoted(name)) contains a path separator (shards must be files in the folder)",
                                  at: "tensor \(tensor)")
        }
        if name == "." || name == ".." || name.isEmpty || name.unicodeScalars.contains("\u{0}") {
            throw TensorFileError(path: path, "shard name \(JSONEncoding.quoted(name)) is not a file name in the folder",
                                  at: "tensor \(tensor)")
        }
        guard name.hasSuffix(".safetensors") else {
            throw TensorFileError(path: path, "shard name \(JSONEncoding.quoted(name)) is not a .safetensors file", at: "tensor \(tensor)")
        }
    }
}

/// A Hugging Face checkpoint folder presented as one ``TensorFile``: config.json, the weights as one
/// `model.safetensors` or as shards listed in `model.safetensors.index.json`, and usually tokenizer.json.
///
/// Opening reads config.json and the index, maps every shard (data stays untouched) and checks that
/// the folder is consistent:
/// - every tensor of the index is in the shard it names, and in no other shard;
/// - every tensor of a shard is listed in the index (a stray tensor is an error: the index is how
///   exporters say what the model is, and a mismatch means the folder was assembled from two exports);
/// - `metadata.total_size`, when given, equals the sum of the tensors' bytes;
/// - every **2-D** floating-point tensor (the weight matrices and embeddings) has the dtype that
///   config.json's `dtype` / `torch_dtype` names (`bfloat16`, `float16`, `float32`). Vectors (norm
///   scales, biases) are not bound by it: several exporters keep norms in F32 in a BF16 checkpoint.
///
/// Tensors are listed shard by shard (shards in file-name order), each shard's in data order; names are
/// unique across the folder. ``floats(_:)`` reads from the shard that holds the tensor and refuses a 2-D
/// tensor that is not F32, F16 or BF16.
public final class CheckpointFolder: TensorFile {
    /// The configuration's file name.
    public static let configFileName = "config.json"
    /// The weights' file name in an unsharded folder.
    public static let singleFileName = "model.safetensors"
    /// The tokenizer's file name.
    public static let tokenizerFileName = "tokenizer.json"
    /// The dtypes ``floats(_:)`` reads for a 2-D tensor.
    public static let matrixDTypes: Set<SafeTensorsDType> = [.f32, .f16, .bf16]

    /// The folder, as given.
    public let path: String
    /// Every tensor of every shard: shards in file-name order, each in data order.
    public let tensors: [TensorInfo]
    /// The shards in file-name order (one, `model.safetensors`, for an unsharded folder).
    public let shards: [SafeTensorsFile]
    /// config.json, flattened (``JSONValue/flattenedMetadata(prefix:)``).
    public let config: [String: MetadataValue]
    /// The config.json that was read.
    public let configPath: String
    /// The shard index (nil for an unsharded folder).
    public let index: CheckpointIndex?
    /// The dtype config.json names for the weight matrices, when it names F32, F16 or BF16.
    public let configDType: SafeTensorsDType?
    /// tokenizer.json in the folder, when present.
    public let tokenizerPath: String?
    /// Device and inode of the first shard; size the sum of config.json, the index and the shards;
    /// modification time the latest of them.
    public let identity: FileIdentity
    /// The sum of the shards' sizes.
    public let fileBytes: Int
    /// Where each tensor is: its shard and its position in ``tensors``.
    private let location: [String: (shard: Int, tensor: Int)]

    /// The first shard's mapping (see ``TensorFile/file``).
    public var file: MappedFile { shards[0].file }

    /// Opens the checkpoint folder at `directory`.
    /// - Throws: ``TensorFileError`` naming the file for a missing config.json or weights, a malformed
    ///   config, index or shard, or a folder whose parts disagree (see the type's description).
    public convenience init(directory: String) throws {
        func inFolder(_ name: String) -> String { directory.hasSuffix("/") ? directory + name : directory + "/" + name }
        func exists(_ p: String) -> Bool { access(p, F_OK) == 0 }
        let configPath = inFolder(Self.configFileName)
        guard exists(configPath) else {
            throw TensorFileError(path: directory, "checkpoint folder has no \(Self.configFileName)")
        }
        let configFile = try MappedFile(path: configPath)
        let indexPath = inFolder(CheckpointIndex.fileName)
        var indexFile: (MappedFile, CheckpointIndex)?
        var shards: [String: SafeTensorsFile] = [:]
        if exists(indexPath) {
            let file = try MappedFile(path: indexPath)
            let index = try CheckpointIndex(parsing: file.bytes, path: indexPath)
            for name in index.shardNames {
                let shardPath = inFolder(name)
                guard exists(shardPath) else {
                    throw TensorFileError(path: indexPath, "names shard \(name), which is not in the folder", at: "shard \(name)")
                }
                shards[name] = try SafeTensorsFile(path: shardPath)
            }
            indexFile = (file, index)
        } else if exists(inFolder(Self.singleFileName)) {
            shards[Self.singleFileName] = try SafeTensorsFile(path: inFolder(Self.singleFileName))
        } else {
            let other = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.gguf"].filter { exists(inFolder($0)) }
            let note = other.isEmpty ? "" : " (\(other.joined(separator: ", ")) is not read: only safetensors)"
            throw TensorFileError(path: directory, "no weights: neither \(CheckpointIndex.fileName) nor \(Self.singleFileName)\(note)")
        }
        let tokenizer = inFolder(Self.tokenizerFileName)
        try self.init(path: directory, configFile: configFile, index: indexFile, shards: shards,
                      tokenizerPath: exists(tokenizer) ? tokenizer : nil)
    }

    /// Assembles a checkpoint from files already mapped or opened (the folder reader, tests, fuzzing).
    ///
    /// - Parameters:
    ///   - path: the folder, for errors and ``path``.
    ///   - configFile: config.json.
    ///   - indexFile: `model.safetensors.index.json`, or nil when `shards` is the single `model.safetensors`
    ///     (then every tensor of `shards` belongs to the model).
    ///   - shards: the opened shards by file name; must hold every shard the index names.
    ///   - tokenizerPath: tokenizer.json, when present.
    /// - Throws: ``TensorFileError`` naming the file for a malformed config or index, a missing shard or
    ///   any inconsistency listed in the type's description.
    public convenience init(path: String, configFile: MappedFile, indexFile: MappedFile?, shards: [String: SafeTensorsFile],
                            tokenizerPath: String? = nil) throws {
        let index = try indexFile.map { ($0, try CheckpointIndex(parsing: $0.bytes, path: $0.path)) }
        try self.init(path: path, configFile: configFile, index: index, shards: shards, tokenizerPath: tokenizerPath)
    }

    /// Assembles a checkpoint from its mapped config.json, its parsed index (with the index's file, for
    /// ``identity``) and its opened shards.
    init(path: String, configFile: MappedFile, index indexParts: (file: MappedFile, parsed: CheckpointIndex)?,
         shards: [String: SafeTensorsFile], tokenizerPath: String?) throws {
        self.path = path
        self.tokenizerPath = tokenizerPath
        configPath = configFile.path
        config = try ModelFiles.parseConfig(configFile.bytes, path: configFile.path)
        configDType = try CheckpointFolder.configDType(config, path: configFile.path)
        let index = indexParts?.parsed
        let indexFile = indexParts?.file
        self.index = index

        // Which shards make up the model.
        let names: [String]
        if let index {
            for name in index.shardNames where shards[name] == nil {
                throw TensorFileError(path: index.path, "names shard \(name), which is not in the folder", at: "shard \(name)")
            }
            names = index.shardNames
        } else {
            names = shards.keys.sorted()
        }
        guard !names.isEmpty, let first = shards[names[0]] else {
            throw TensorFileError(path: path, "no weights: no safetensors shard was given")
        }
        let opened = names.map { shards[$0] ?? first }

        // Every tensor in exactly one shard.
        var location: [String: (shard: Int, tensor: Int)] = [:]
        var tensors: [TensorInfo] = []
        for (s, shard) in opened.enumerated() {
            for t in shard.tensors {
                if let earlier = location[t.name] {
                    throw TensorFileError(path: index?.path ?? path,
                                          "tensor is in two shards: \(names[earlier.shard]) and \(names[s])", at: "tensor \(t.name)")
                }
                location[t.name] = (s, tensors.count)
                tensors.append(t)
            }
        }

        // The index and the shards agree in both directions.
        if let index {
            for e in index.weightMap {
                guard let found = location[e.tensor] else {
                    throw TensorFileError(path: shards[e.shard]?.path ?? e.shard,
                                          "does not hold tensor \(e.tensor), which the index maps to it", at: "tensor \(e.tensor)")
                }
                guard names[found.shard] == e.shard else {
                    throw TensorFileError(path: index.path, "maps the tensor to \(e.shard) but it is in \(names[found.shard])",
                                          at: "tensor \(e.tensor)")
                }
            }
            for (s, shard) in opened.enumerated() {
                for t in shard.tensors where index.shard(of: t.name) == nil {
                    throw TensorFileError(path: shard.path, "holds tensor \(t.name), which the index does not list (\(names[s]))",
                                          at: "tensor \(t.name)")
                }
            }
            if let declared = index.totalSize {
                var sum = 0
                for t in tensors {
                    guard let s = CheckedSize.add(sum, t.byteCount) else {
                        throw TensorFileError(path: index.path, "the tensors' sizes overflow", at: "tensor \(t.name)")
                    }
                    sum = s
                }
                guard sum == declared else {
                    throw TensorFileError(path: index.path, "metadata.total_size is \(declared) but the tensors hold \(sum) bytes",
                                          at: "metadata.total_size")
                }
            }
        }

        // The weight matrices have the dtype config.json names.
        if let expected = configDType {
            for (s, shard) in opened.enumerated() {
                for t in shard.tensors where t.shape.count == 2 {
                    guard let dtype = shard.dtype(of: t), dtype.isFloatingPoint, dtype != expected else { continue }
                    throw TensorFileError(path: opened[s].path,
                                          "config.json says the weights are \(CheckpointFolder.torchName(expected)) (\(expected.rawValue)) but this matrix is \(dtype.rawValue)",
                                          at: "tensor \(t.name)")
                }
            }
        }

        self.shards = opened
        self.tensors = tensors
        self.location = location
        var bytes = 0
        for shard in opened { bytes = CheckedSize.add(bytes, shard.file.count) ?? Int.max }
        fileBytes = bytes
        var size = Int64(configFile.count) &+ Int64(indexFile?.count ?? 0)
        var mtime = max(configFile.identity.modificationTimeNanoseconds, indexFile?.identity.modificationTimeNanoseconds ?? 0)
        for shard in opened {
            size = size &+ shard.file.identity.size
            mtime = max(mtime, shard.file.identity.modificationTimeNanoseconds)
        }
        identity = FileIdentity(device: first.file.identity.device, inode: first.file.identity.inode, size: size,
                                modificationTimeNanoseconds: mtime)
    }

    /// The shard that holds `tensor`, when it is one of this folder's tensors.
    public func shard(of tensor: TensorInfo) -> SafeTensorsFile? {
        guard let at = location[tensor.name] else { return nil }
        return shards[at.shard]
    }

    /// The safetensors dtype of one of this folder's tensors.
    public func dtype(of tensor: TensorInfo) -> SafeTensorsDType? { shard(of: tensor)?.dtype(of: tensor) }

    /// Looks `tensor` up: its shard and dtype.
    private func validated(_ tensor: TensorInfo) throws -> (SafeTensorsFile, SafeTensorsDType) {
        guard let at = location[tensor.name], let dtype = shards[at.shard].dtype(of: tensor) else {
            throw TensorFileError(path: path, "no tensor named \(tensor.name)")
        }
        guard tensors[at.tensor] == tensor else {
            throw TensorFileError(path: shards[at.shard].path, "tensor info does not match the file", at: "tensor \(tensor.name)")
        }
        return (shards[at.shard], dtype)
    }

    /// The tensor's data converted to Float, read from the shard that holds it (F16 and BF16 widened
    /// exactly; vectors of other dtypes converted by value).
    /// - Throws: ``TensorFileError`` when `tensor` is not one of this folder's tensors, or is 2-D with a
    ///   dtype other than F32, F16 or BF16 (an integer or F64 weight matrix is not a model kvscope reads).
    public func floats(_ tensor: TensorInfo) throws -> [Float] {
        let (shard, dtype) = try validated(tensor)
        if tensor.shape.count == 2, !Self.matrixDTypes.contains(dtype) {
            throw TensorFileError(path: shard.path, "a weight matrix must be F32, F16 or BF16, not \(dtype.rawValue)",
                                  at: "tensor \(tensor.name)")
        }
        return try shard.floats(tensor)
    }

    /// The raw bytes of one of this folder's tensors, from the shard that holds it.
    ///
    /// Traps for a tensor of another file (a programming error, as for any ``TensorFile``).
    public func rawBytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer {
        guard let at = location[tensor.name], tensors[at.tensor] == tensor else {
            preconditionFailure("\(path): tensor \(tensor.name) is not one of this folder's tensors")
        }
        let shard = shards[at.shard]
        return UnsafeRawBufferPointer(rebasing: shard.file.bytes[tensor.byteOffset..<(tensor.byteOffset + tensor.byteCount)])
    }

    /// The dtype config.json names for the weights: `dtype` (newer transformers), else `torch_dtype`.
    ///
    /// `bfloat16`, `float16` (`half`) and `float32` (`float`), optionally prefixed `torch.`, give BF16, F16
    /// and F32; other names (`auto`, quantized types) give nil, i.e. no check.
    /// - Throws: ``TensorFileError`` when the two keys name different known dtypes, or one is not a string.
    public static func configDType(_ config: [String: MetadataValue], path: String) throws -> SafeTensorsDType? {
        func read(_ key: String) throws -> SafeTensorsDType? {
            guard let value = config[key] else { return nil }
            guard let name = value.stringValue else {
                throw TensorFileError(path: path, "\(key) is not a string", at: key)
            }
            let bare = name.hasPrefix("torch.") ? String(name.dropFirst(6)) : name
            switch bare {
            case "bfloat16": return .bf16
            case "float16", "half": return .f16
            case "float32", "float": return .f32
            default: return nil
            }
        }
        let dtype = try read("dtype"), torchDType = try read("torch_dtype")
        if let a = dtype, let b = torchDType, a != b {
            throw TensorFileError(path: path, "dtype says \(torchName(a)) but torch_dtype says \(torchName(b))", at: "dtype")
        }
        return dtype ?? torchDType
    }

    /// The PyTorch name of a dtype, as config.json writes it.
    static func torchName(_ dtype: SafeTensorsDType) -> String {
        switch dtype {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        case .f32: return "float32"
        case .f64: return "float64"
        default: return dtype.rawValue.lowercased()
        }
    }
}
