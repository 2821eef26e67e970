/// One tensor in a model file, described without touching its data.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's name in the file (e.g. `blk.0.attn_k.weight`).
    public var name: String
    /// Shape in PyTorch order, outermost first: a weight is [out, in], whatever the file's order.
    public var shape: [Int]
    /// The dtype's display name: the GGML type name for GGUF (F32, Q4_1, …), the safetensors
    /// dtype (F32, BF16, I64, …) otherwise.
    public var dtype: String
    /// Absolute offset of the first data byte in the file.
    public var byteOffset: Int
    /// Number of data bytes.
    public var byteCount: Int

    public init(name: String, shape: [Int], dtype: String, byteOffset: Int, byteCount: Int) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }

    /// Number of elements: 0 when any dimension is 0, in any order. (The readers reject shapes whose
    /// product does not fit in an Int; for such a hand-made shape this is 0 rather than a trap.)
    public var elementCount: Int { CheckedSize.product(shape) ?? 0 }
}

/// A model file opened lazily: headers are parsed on open, tensor data is read on demand.
public protocol TensorFile: AnyObject, Sendable {
    /// The path as given.
    var path: String { get }
    /// The tensors in file order.
    var tensors: [TensorInfo] { get }
    /// The mapped file (for a ``CheckpointFolder`` of several shards: its first shard; use
    /// ``rawBytes(_:)``, ``identity`` and ``fileBytes``, which cover every shard).
    var file: MappedFile { get }
    /// The tensor's data converted to Float, row-major in ``TensorInfo/shape`` order.
    /// - Throws: ``TensorFileError`` for a dtype that cannot be converted.
    func floats(_ tensor: TensorInfo) throws -> [Float]
    /// The raw bytes of one of this file's tensors (a view into the mapping; valid while the file is open).
    ///
    /// ``TensorInfo/byteOffset`` is an offset in the file that holds the tensor; a ``CheckpointFolder``
    /// looks that file up by the tensor's name. Passing a tensor of another file is a programming error.
    func rawBytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer
    /// What identifies the content for on-disk caches: ``MappedFile/identity`` of the file, or
    /// for a checkpoint folder a combination of all its files (it changes when any of them does).
    var identity: FileIdentity { get }
    /// Bytes on disk: the file's size, or the sum of the shards' sizes for a checkpoint folder.
    var fileBytes: Int { get }
}

extension TensorFile {
    /// The tensor named `name`, if present.
    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    /// The raw bytes of a tensor in ``file`` (a view into the mapping; valid while the file is open).
    public func rawBytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[tensor.byteOffset..<(tensor.byteOffset + tensor.byteCount)])
    }

    /// ``MappedFile/identity`` of ``file``.
    public var identity: FileIdentity { file.identity }

    /// The size of ``file``.
    public var fileBytes: Int { file.count }
}
