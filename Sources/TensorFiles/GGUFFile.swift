import Foundation

/// A GGUF tensor as described by its tensor info, in ggml's terms.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The format-independent description: PyTorch-order shape (reversed `ne`), GGML type name as dtype,
    /// absolute byte offset and byte count.
    public var info: TensorInfo
    /// ggml's `ne`: innermost (contiguous) dimension first, so a weight is [in, out].
    public var dimensions: [Int]
    /// The ggml type of the data.
    public var type: GGMLType
    /// The offset stored in the file, relative to the start of the data section.
    public var relativeOffset: Int

    /// The tensor's name.
    public var name: String { info.name }
}

/// A GGUF (version 2 or 3) model file, memory-mapped; opening it parses the header only.
///
/// Every count, length and offset read from the file is checked before it is used: a malformed
/// file throws a ``TensorFileError`` naming the file, what is wrong and where, and never makes
/// kvscope allocate more than the file could describe.
public final class GGUFFile: TensorFile {
    /// The GGUF magic, "GGUF" read as a little-endian UInt32.
    public static let magic: UInt32 = 0x4655_4747
    /// The default data alignment when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
    public static let maxDimensions = 4
    /// How deeply metadata arrays may nest.
    public static let maxArrayNesting = 8

    public let path: String
    public let file: MappedFile
    /// The format version (2 or 3).
    public let version: Int
    /// Metadata entries in file order, with their exact types.
    public let metadataEntries: [GGUFMetadataEntry]
    /// Metadata keys in file order.
    public var metadataKeys: [String] { metadataEntries.map(\.key) }
    /// Metadata values by key (built on first use; ``subscript(_:)`` converts just one key).
    public var metadata: [String: MetadataValue] {
        metadataCache.value {
            var all: [String: MetadataValue] = [:]
            all.reserveCapacity(metadataEntries.count)
            for e in metadataEntries { all[e.key] = e.value.metadataValue }
            return all
        }
    }
    /// Metadata without the long arrays (more than `maxArrayCount` elements, e.g. the tokenizer's
    /// 49k tokens and merges), which are costly to convert and which model description does not
    /// need; read those with ``subscript(_:)`` or ``metadata``.
    public func compactMetadata(maxArrayCount: Int = 1024) -> [String: MetadataValue] {
        var out: [String: MetadataValue] = [:]
        for e in metadataEntries {
            if case .array(_, let items) = e.value, items.count > maxArrayCount { continue }
            out[e.key] = e.value.metadataValue
        }
        return out
    }

    /// GGUF tensor infos in file order.
    public let ggufTensors: [GGUFTensorInfo]
    /// Tensors in file order (shape in PyTorch order, dtype = GGML type name).
    public let tensors: [TensorInfo]
    /// The data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Absolute offset of the data section: the end of the header, aligned.
    public let dataOffset: Int

    private let indexByName: [String: Int]
    private let entryIndex: [String: Int]
    private let metadataCache = OnceCache<[String: MetadataValue]>()

    /// Opens and maps `path`, parsing and validating the header and tensor infos.
    /// - Parameter path: The file to open.
    /// - Throws: ``TensorFileError`` when the file cannot be read or is not a valid GGUF v2/v3 file.
    public convenience init(path: String) throws {
        try self.init(mapping: MappedFile(path: path))
    }

    /// Parses an already mapped file.
    /// - Throws: ``TensorFileError`` when the file is not a valid GGUF v2/v3 file.
    public init(mapping file: MappedFile) throws {
        self.file = file
        self.path = file.path
        var parser = GGUFHeaderParser(ByteReader(file.bytes, path: file.path))
        let header = try parser.parseHeader()
        version = header.version
        metadataEntries = header.entries
        var entryIndex: [String: Int] = [:]
        entryIndex.reserveCapacity(header.entries.count)
        for (i, e) in header.entries.enumerated() { entryIndex[e.key] = i }
        self.entryIndex = entryIndex
        alignment = header.alignment
        dataOffset = header.dataOffset
        ggufTensors = header.tensors
        tensors = header.tensors.map(\.info)
        var index: [String: Int] = [:]
        index.reserveCapacity(header.tensors.count)
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        indexByName = index
    }

    /// The metadata value for `key`, if present.
    public subscript(key: String) -> MetadataValue? { typedMetadata(key)?.metadataValue }

    /// The metadata value for `key` with its exact GGUF type, if present.
    public func typedMetadata(_ key: String) -> GGUFValue? {
        entryIndex[key].map { metadataEntries[$0].value }
    }

    /// The GGUF tensor info named `name`, if present.
    public func ggufTensor(named name: String) -> GGUFTensorInfo? {
        indexByName[name].map { ggufTensors[$0] }
    }

    /// The ggml type of `tensor`, or nil when it is not a tensor of this file.
    public func ggmlType(of tensor: TensorInfo) -> GGMLType? { ggufTensor(named: tensor.name)?.type }

    /// The tensor's data converted to Float, row-major in PyTorch order ([out, in] for a weight).
    ///
    /// Conversions are bit-identical to gguf-py's `gguf.quants.dequantize`.
    /// - Throws: ``TensorFileError`` when the tensor is not in this file or its type cannot be dequantized.
    public func floats(_ tensor: TensorInfo) throws -> [Float] {
        guard let t = ggufTensor(named: tensor.name), t.info.byteOffset == tensor.byteOffset else {
            throw TensorFileError(path: path, "no such tensor in this file", at: "tensor '\(tensor.name)'")
        }
        return try floats(t)
    }

    /// The tensor's data converted to Float, row-major in PyTorch order.
    /// - Throws: ``TensorFileError`` when its type cannot be dequantized.
    public func floats(_ tensor: GGUFTensorInfo) throws -> [Float] {
        guard tensor.type.canDequantize else {
            throw TensorFileError(path: path, "cannot convert ggml type \(tensor.type.name) to Float", at: "tensor '\(tensor.name)'")
        }
        let count = tensor.info.elementCount
        let raw = UnsafeRawBufferPointer(rebasing: file.bytes[tensor.info.byteOffset..<(tensor.info.byteOffset + tensor.info.byteCount)])
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            GGMLDequantizer.dequantize(tensor.type, from: raw, into: buffer)
            initialized = count
        }
    }

    /// The named tensor's data converted to Float.
    /// - Throws: ``TensorFileError`` when there is no such tensor or its type cannot be dequantized.
    public func floats(named name: String) throws -> [Float] {
        guard let t = ggufTensor(named: name) else {
            throw TensorFileError(path: path, "no such tensor", at: "tensor '\(name)'")
        }
        return try floats(t)
    }

    /// Dequantizes every tensor once (each into a fresh array), for benchmarks.
    /// - Returns: The number of tensors and of Float values produced.
    /// - Throws: ``TensorFileError`` for a tensor whose type cannot be dequantized.
    @discardableResult
    public func dequantizeAll() throws -> (tensors: Int, elements: Int) {
        var elements = 0
        for t in ggufTensors {
            let values = try floats(t)
            elements += values.count
        }
        return (ggufTensors.count, elements)
    }
}

/// A value computed once, on first use, safely from any thread.
final class OnceCache<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?

    func value(_ make: () -> Value) -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let v = stored { return v }
        let v = make()
        stored = v
        return v
    }
}

/// What ``GGUFHeaderParser`` reads: everything before the data section.
struct GGUFHeader {
    var version: Int
    var entries: [GGUFMetadataEntry]
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    var dataOffset: Int
}

/// Parses and validates a GGUF header over a bounds-checked reader.
struct GGUFHeaderParser {
    var reader: ByteReader
    var path: String { reader.path }

    init(_ reader: ByteReader) { self.reader = reader }

    private func error(_ message: String, at location: String) -> TensorFileError {
        TensorFileError(path: path, message, at: location)
    }

    mutating func parseHeader() throws -> GGUFHeader {
        guard reader.bytes.count >= 4 else {
            throw error("not a GGUF file: \(reader.bytes.count) bytes, too short for the magic", at: "offset 0")
        }
        let magic = try reader.read(UInt32.self, "magic")
        guard magic == GGUFFile.magic else {
            let shown = (0..<4).map { i -> String in
                let b = UInt8(truncatingIfNeeded: magic >> (8 * UInt32(i)))
                return (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
            }.joined()
            throw error("not a GGUF file: magic is \"\(shown)\", expected \"GGUF\"", at: "offset 0")
        }
        let version = try reader.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw error("big-endian GGUF (version \(version.byteSwapped)) is not supported", at: "offset 4")
            }
            throw error("unsupported GGUF version \(version) (kvscope reads versions 2 and 3)", at: "offset 4")
        }
        let tensorCountOffset = reader.offset
        let tensorCount = try reader.read(UInt64.self, "tensor count")
        let kvCountOffset = reader.offset
        let kvCount = try reader.read(UInt64.self, "metadata key/value count")
        // A metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
        // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset). Larger counts cannot be real.
        guard kvCount <= UInt64(reader.remaining / 13) else {
            throw error("metadata count \(kvCount) is impossible: the \(reader.remaining) bytes left could hold at most \(reader.remaining / 13) (file truncated or corrupt)",
                        at: "offset \(kvCountOffset)")
        }
        guard tensorCount <= UInt64(reader.remaining / 24) else {
            throw error("tensor count \(tensorCount) is impossible: the \(reader.remaining) bytes left could hold at most \(reader.remaining / 24) (file truncated or corrupt)",
                        at: "offset \(tensorCountOffset)")
        }

        var entries: [GGUFMetadataEntry] = []
        entries.reserveCapacity(Int(kvCount))
        var seenKeys = Set<String>()
        for i in 0..<Int(kvCount) {
            let keyOffset = reader.offset
            let key = try readString(strict: true, "key of metadata entry \(i)")
            guard seenKeys.insert(key).inserted else {
                throw error("duplicate metadata key", at: "metadata key '\(key)', offset \(keyOffset)")
            }
            let typeOffset = reader.offset
            let rawType = try reader.read(UInt32.self, "type of metadata key '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw error("unknown metadata value type \(rawType)", at: "metadata key '\(key)', offset \(typeOffset)")
            }
            let value = try readValue(type, key: key, depth: 0)
            entries.append(GGUFMetadataEntry(key: key, value: value))
        }

        var alignment = GGUFFile.defaultAlignment
        if let entry = entries.first(where: { $0.key == "general.alignment" }) {
            guard let a = entry.value.metadataValue.intValue, entry.value.type != .float32, entry.value.type != .float64,
                  entry.value.type != .bool else {
                throw error("general.alignment must be an unsigned integer, found \(entry.value.type)", at: "metadata key 'general.alignment'")
            }
            guard a > 0, a & (a - 1) == 0, a <= 1 << 30 else {
                throw error("general.alignment \(a) is not a power of two", at: "metadata key 'general.alignment'")
            }
            alignment = a
        }

        var raw: [(name: String, dims: [Int], type: GGMLType, offset: Int, at: Int)] = []
        raw.reserveCapacity(Int(tensorCount))
        var seenNames = Set<String>()
        for i in 0..<Int(tensorCount) {
            let infoOffset = reader.offset
            let name = try readString(strict: true, "name of tensor \(i)")
            guard seenNames.insert(name).inserted else {
                throw error("duplicate tensor name", at: "tensor '\(name)', offset \(infoOffset)")
            }
            let nDimsOffset = reader.offset
            let nDims = try reader.read(UInt32.self, "n_dims of tensor '\(name)'")
            guard nDims <= UInt32(GGUFFile.maxDimensions) else {
                throw error("tensor has \(nDims) dimensions, at most \(GGUFFile.maxDimensions) are allowed",
                            at: "tensor '\(name)', offset \(nDimsOffset)")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let at = reader.offset
                let ne = try reader.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard ne <= UInt64(Int64.max) else {
                    throw error("dimension \(d) is \(ne), more than any file can hold", at: "tensor '\(name)', offset \(at)")
                }
                dims.append(Int(ne))
            }
            let typeOffset = reader.offset
            let rawType = try reader.read(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw error("unknown ggml type \(rawType)", at: "tensor '\(name)', offset \(typeOffset)")
            }
            let offsetAt = reader.offset
            let offset = try reader.read(UInt64.self, "data offset of tensor '\(name)'")
            guard offset <= UInt64(Int64.max) else {
                throw error("data offset \(offset) is beyond any file", at: "tensor '\(name)', offset \(offsetAt)")
            }
            raw.append((name, dims, type, Int(offset), infoOffset))
        }

        let headerEnd = reader.offset
        let dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        let fileSize = reader.bytes.count

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(raw.count)
        for t in raw {
            let at = "tensor '\(t.name)'"
            let shape = Array(t.dims.reversed())
            guard let elements = CheckedSize.product(t.dims) else {
                throw error("dimensions \(shape) overflow: their product does not fit in 64 bits", at: at)
            }
            let rowLength = t.dims.first ?? 1
            guard let rowBytes = t.type.rowByteCount(elements: rowLength) else {
                throw error("rows of \(rowLength) elements are not a whole number of \(t.type.name) blocks of \(t.type.blockSize)", at: at)
            }
            let rows = rowLength == 0 ? 0 : elements / rowLength
            guard let byteCount = CheckedSize.multiply(rowBytes, rows) else {
                throw error("byte size of shape \(shape) in \(t.type.name) overflows", at: at)
            }
            guard t.offset % alignment == 0 else {
                throw error("data offset \(t.offset) is not a multiple of the alignment \(alignment)", at: at)
            }
            guard let start = CheckedSize.add(dataOffset, t.offset), let end = CheckedSize.add(start, byteCount), end <= fileSize else {
                let available = max(0, fileSize - min(fileSize, dataOffset &+ t.offset))
                throw error("shape \(shape) of \(t.type.name) needs \(byteCount) bytes at data offset \(t.offset), "
                            + "but the file has only \(available) bytes there (data out of bounds, file size \(fileSize))", at: at)
            }
            let info = TensorInfo(name: t.name, shape: shape, dtype: t.type.name, byteOffset: start, byteCount: byteCount)
            tensors.append(GGUFTensorInfo(info: info, dimensions: t.dims, type: t.type, relativeOffset: t.offset))
        }

        // No two tensors may share bytes.
        let byStart = tensors.indices.filter { tensors[$0].info.byteCount > 0 }.sorted {
            tensors[$0].info.byteOffset < tensors[$1].info.byteOffset
        }
        for (a, b) in zip(byStart, byStart.dropFirst()) {
            let first = tensors[a].info, second = tensors[b].info
            if first.byteOffset + first.byteCount > second.byteOffset {
                throw error("data of tensor '\(first.name)' [\(first.byteOffset), \(first.byteOffset + first.byteCount)) "
                            + "overlaps data of tensor '\(second.name)' starting at \(second.byteOffset)",
                            at: "tensor '\(second.name)'")
            }
        }
        return GGUFHeader(version: Int(version), entries: entries, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }

    /// Reads a GGUF string (u64 length + bytes). Keys and tensor names must be valid UTF-8 (`strict`);
    /// invalid sequences in string values are replaced with U+FFFD.
    private mutating func readString(strict: Bool, _ what: @autoclosure () -> String) throws -> String {
        let at = reader.offset
        let length = try reader.read(UInt64.self, "length of \(what())")
        guard length <= UInt64(reader.remaining) else {
            throw error("\(what()) has length \(length), beyond the end of the file (\(reader.remaining) bytes left)", at: "offset \(at)")
        }
        let count = Int(length)
        let start = reader.offset
        let bytes = UnsafeRawBufferPointer(rebasing: reader.bytes[start..<(start + count)]).assumingMemoryBound(to: UInt8.self)
        reader.offset += count
        if strict {
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw error("\(what()) is not valid UTF-8", at: "offset \(start)")
            }
            return s
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "value of metadata key '\(key)'"
        switch type {
        case .uint8: return .uint8(try reader.read(UInt8.self, what))
        case .int8: return .int8(try reader.read(Int8.self, what))
        case .uint16: return .uint16(try reader.read(UInt16.self, what))
        case .int16: return .int16(try reader.read(Int16.self, what))
        case .uint32: return .uint32(try reader.read(UInt32.self, what))
        case .int32: return .int32(try reader.read(Int32.self, what))
        case .uint64: return .uint64(try reader.read(UInt64.self, what))
        case .int64: return .int64(try reader.read(Int64.self, what))
        case .float32: return .float32(try reader.readFloat(what))
        case .float64: return .float64(try reader.readDouble(what))
        case .bool:
            let at = reader.offset
            let b = try reader.read(UInt8.self, what)
            guard b <= 1 else { throw error("bool value is \(b), expected 0 or 1", at: "metadata key '\(key)', offset \(at)") }
            return .bool(b == 1)
        case .string:
            return .string(try readString(strict: false, what))
        case .array:
            guard depth < GGUFFile.maxArrayNesting else {
                throw error("arrays nested more than \(GGUFFile.maxArrayNesting) deep", at: "metadata key '\(key)', offset \(reader.offset)")
            }
            let typeAt = reader.offset
            let rawElement = try reader.read(UInt32.self, "element type of metadata key '\(key)'")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw error("unknown array element type \(rawElement)", at: "metadata key '\(key)', offset \(typeAt)")
            }
            let countAt = reader.offset
            let count = try reader.read(UInt64.self, "element count of metadata key '\(key)'")
            let most = reader.remaining / element.minimumEncodedSize
            guard count <= UInt64(most) else {
                throw error("array of \(count) \(element) elements cannot fit in the \(reader.remaining) bytes left (at most \(most))",
                            at: "metadata key '\(key)', offset \(countAt)")
            }
            return .array(element, try readElements(element, count: Int(count), key: key, depth: depth))
        }
    }

    /// Reads `count` array elements; plain numbers in a tight loop, strings and arrays one by one.
    private mutating func readElements(_ type: GGUFValueType, count: Int, key: String, depth: Int) throws -> [GGUFValue] {
        var values: [GGUFValue] = []
        values.reserveCapacity(count)
        switch type {
        case .string:
            for i in 0..<count { values.append(.string(try readString(strict: false, "element \(i) of metadata key '\(key)'"))) }
        case .array, .bool:
            for _ in 0..<count { values.append(try readValue(type, key: key, depth: depth + 1)) }
        default:
            // Numbers: the count check guarantees the bytes are there.
            let size = type.minimumEncodedSize
            try reader.require(count * size, "elements of metadata key '\(key)'")
            let base = reader.offset
            let b = reader.bytes
            for i in 0..<count {
                let o = base + i * size
                switch type {
                case .uint8: values.append(.uint8(b[o]))
                case .int8: values.append(.int8(Int8(bitPattern: b[o])))
                case .uint16: values.append(.uint16(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
                case .int16: values.append(.int16(Int16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int16.self))))
                case .uint32: values.append(.uint32(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
                case .int32: values.append(.int32(Int32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int32.self))))
                case .uint64: values.append(.uint64(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
                case .int64: values.append(.int64(Int64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int64.self))))
                case .float32:
                    values.append(.float32(Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)))))
                case .float64:
                    values.append(.float64(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)))))
                default: break
                }
            }
            reader.offset = base + count * size
        }
        return values
    }
}
