import LinearAlgebra

/// The element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case u16 = "U16", i16 = "I16", f16 = "F16", bf16 = "BF16"
    case u32 = "U32", i32 = "I32", f32 = "F32"
    case u64 = "U64", i64 = "I64", f64 = "F64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 }
}

/// A safetensors file, memory-mapped: the header is parsed and fully validated on open,
/// tensor data is read only when asked for.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON (`{name: {dtype, shape,
/// data_offsets: [begin, end]}, "__metadata__": {string: string}}`), then the data buffer.
/// Opening checks that every tensor's byte range matches its shape and dtype, lies inside the
/// buffer, and that the ranges tile the buffer exactly: no overlap, no gap, ending at the file's end.
public final class SafeTensorsFile: TensorFile {
    /// The largest header accepted (the official reader's limit).
    public static let maxHeaderSize = 100_000_000

    public let path: String
    public let file: MappedFile
    /// The tensors in data-offset order (the order of their bytes in the file).
    public let tensors: [TensorInfo]
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Offset of the first data byte (8 + header length).
    public let dataStart: Int
    private let dtypes: [String: SafeTensorsDType]
    private let index: [String: Int]

    /// Maps and validates `path`.
    /// - Throws: ``TensorFileError`` naming the offset or tensor for every malformed header or layout.
    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Validates an already mapped file.
    /// - Throws: ``TensorFileError`` for a malformed header or layout.
    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        var reader = ByteReader(file.bytes, path: path)
        let declared = try reader.read(UInt64.self, "header length")
        guard declared <= UInt64(Self.maxHeaderSize) else {
            throw TensorFileError(path: path, "header length \(declared) exceeds the \(Self.maxHeaderSize)-byte limit",
                                  at: "offset 0")
        }
        let headerLength = Int(declared)
        guard headerLength <= reader.remaining else {
            throw TensorFileError(path: path, "header length \(headerLength) runs past the end of the file (\(reader.remaining) bytes after the length)",
                                  at: "offset 0")
        }
        guard headerLength >= 2, file.bytes[8] == UInt8(ascii: "{") else {
            throw TensorFileError(path: path, "header does not start with '{'", at: "offset 8")
        }
        let header = UnsafeRawBufferPointer(rebasing: file.bytes[8..<(8 + headerLength)])
        let json = try JSONParser.parse(header, path: path, baseOffset: 8)
        guard case .object(let members) = json else {
            throw TensorFileError(path: path, "header is not a JSON object", at: "offset 8")
        }
        dataStart = 8 + headerLength
        let dataLength = file.count - dataStart

        var metadata: [String: String] = [:]
        struct Entry { var name: String; var dtype: SafeTensorsDType; var shape: [Int]; var begin: Int; var end: Int }
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw TensorFileError(path: path, "__metadata__ is not an object of strings", at: "header")
                }
                for (k, v) in pairs {
                    guard case .string(let s) = v else {
                        throw TensorFileError(path: path, "__metadata__ value is not a string", at: "key \(k)")
                    }
                    metadata[k] = s
                }
                continue
            }
            let at = "tensor \(name)"
            guard case .object = value else { throw TensorFileError(path: path, "entry is not an object", at: at) }
            guard case .string(let dtypeName)? = value["dtype"] else {
                throw TensorFileError(path: path, "missing or non-string dtype", at: at)
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw TensorFileError(path: path, "unknown dtype \"\(dtypeName)\"", at: at)
            }
            guard case .array(let dims)? = value["shape"] else {
                throw TensorFileError(path: path, "missing or non-array shape", at: at)
            }
            var shape: [Int] = []
            for d in dims {
                guard case .number(let i?, _) = d, i >= 0 else {
                    throw TensorFileError(path: path, "shape entries must be non-negative integers", at: at)
                }
                shape.append(i)
            }
            guard case .array(let offsets)? = value["data_offsets"], offsets.count == 2,
                  case .number(let begin?, _) = offsets[0], case .number(let end?, _) = offsets[1],
                  begin >= 0, end >= 0 else {
                throw TensorFileError(path: path, "data_offsets must be two non-negative integers", at: at)
            }
            guard begin <= end else {
                throw TensorFileError(path: path, "data_offsets [\(begin), \(end)] end before they begin", at: at)
            }
            guard let elements = CheckedSize.product(shape), let bytes = CheckedSize.multiply(elements, dtype.size) else {
                throw TensorFileError(path: path, "shape \(shape) has too many elements (the product overflows)", at: at)
            }
            guard bytes == end - begin else {
                throw TensorFileError(path: path, "shape \(shape) of \(dtypeName) needs \(bytes) bytes but data_offsets [\(begin), \(end)] hold \(end - begin)",
                                      at: at)
            }
            guard end <= dataLength else {
                throw TensorFileError(path: path, "data_offsets [\(begin), \(end)] run past the end of the data (\(dataLength) bytes)",
                                      at: at)
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }

        // The byte ranges must tile [0, dataLength) exactly.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for e in entries {
            if e.begin < expected {
                throw TensorFileError(path: path, "data_offsets [\(e.begin), \(e.end)] overlap the previous tensor, which ends at \(expected)",
                                      at: "tensor \(e.name)")
            }
            if e.begin > expected {
                throw TensorFileError(path: path, "gap in the data: bytes \(expected)..<\(e.begin) belong to no tensor",
                                      at: "tensor \(e.name)")
            }
            expected = e.end
        }
        guard expected == dataLength else {
            throw TensorFileError(path: path, "the tensors end at data offset \(expected) but the file has \(dataLength) data bytes",
                                  at: "offset \(dataStart + expected)")
        }

        self.metadata = metadata
        tensors = entries.map {
            TensorInfo(name: $0.name, shape: $0.shape, dtype: $0.dtype.rawValue,
                       byteOffset: 8 + headerLength + $0.begin, byteCount: $0.end - $0.begin)
        }
        dtypes = Dictionary(entries.map { ($0.name, $0.dtype) }, uniquingKeysWith: { a, _ in a })
        index = Dictionary(tensors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The safetensors dtype of a tensor of this file.
    public func dtype(of tensor: TensorInfo) -> SafeTensorsDType? { dtypes[tensor.name] }

    /// Checks that `tensor` is one of this file's tensors (callers may pass edited infos).
    private func validated(_ tensor: TensorInfo) throws -> (TensorInfo, SafeTensorsDType) {
        guard let i = index[tensor.name], let dtype = dtypes[tensor.name] else {
            throw TensorFileError(path: path, "no tensor named \(tensor.name)")
        }
        let own = tensors[i]
        guard own == tensor else {
            throw TensorFileError(path: path, "tensor info does not match the file", at: "tensor \(tensor.name)")
        }
        return (own, dtype)
    }

    /// The tensor's data converted to Float (integers and BOOL converted by value).
    /// - Throws: ``TensorFileError`` when `tensor` is not one of this file's tensors.
    public func floats(_ tensor: TensorInfo) throws -> [Float] {
        let (info, dtype) = try validated(tensor)
        let raw = rawBytes(info)
        let n = info.byteCount / dtype.size
        return [Float](unsafeUninitializedCapacity: n) { out, initialized in
            SafeTensorsConversion.toFloat(raw, dtype: dtype, count: n, into: out)
            initialized = n
        }
    }

    /// The tensor's data converted to Double (exact for F64, F32, F16, BF16 and integers up to 2^53).
    /// - Throws: ``TensorFileError`` when `tensor` is not one of this file's tensors.
    public func doubles(_ tensor: TensorInfo) throws -> [Double] {
        let (info, dtype) = try validated(tensor)
        let raw = rawBytes(info)
        let n = info.byteCount / dtype.size
        if dtype == .f64 {
            return (0..<n).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        }
        if dtype == .i64 {
            return (0..<n).map { Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        }
        if dtype == .u64 {
            return (0..<n).map { Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        }
        return try floats(info).map(Double.init)
    }

    /// The tensor's data as Int64, for integer and BOOL tensors.
    /// - Throws: ``TensorFileError`` for a floating-point tensor or a U64 value above Int64.max.
    public func int64s(_ tensor: TensorInfo) throws -> [Int64] {
        let (info, dtype) = try validated(tensor)
        let raw = rawBytes(info)
        let n = info.byteCount / dtype.size
        func load<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
            (0..<n).map { Int64(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * $0, as: T.self))) }
        }
        switch dtype {
        case .bool, .u8: return load(UInt8.self)
        case .i8: return load(Int8.self)
        case .u16: return load(UInt16.self)
        case .i16: return load(Int16.self)
        case .u32: return load(UInt32.self)
        case .i32: return load(Int32.self)
        case .i64: return load(Int64.self)
        case .u64:
            var out: [Int64] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                guard let x = Int64(exactly: v) else {
                    throw TensorFileError(path: path, "U64 value \(v) does not fit in Int64", at: "tensor \(info.name)[\(i)]")
                }
                out.append(x)
            }
            return out
        case .f16, .bf16, .f32, .f64:
            throw TensorFileError(path: path, "\(dtype.rawValue) tensor is not an integer tensor", at: "tensor \(info.name)")
        }
    }
}

/// Element conversions between safetensors dtypes and Float.
enum SafeTensorsConversion {
    /// Converts `count` little-endian elements of `dtype` from `raw` (any alignment) to Float.
    static func toFloat(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, count n: Int,
                        into out: UnsafeMutableBufferPointer<Float>) {
        @inline(__always) func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
            T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
        switch dtype {
        case .f32:
            if n > 0, let src = raw.baseAddress, let dst = out.baseAddress {
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * n)
            }
        case .f16: for i in 0..<n { out[i] = HalfPrecision.floatFromHalf(load(i, UInt16.self)) }
        case .bf16: for i in 0..<n { out[i] = HalfPrecision.floatFromBFloat16(load(i, UInt16.self)) }
        case .f64: for i in 0..<n { out[i] = Float(Double(bitPattern: load(i, UInt64.self))) }
        case .bool: for i in 0..<n { out[i] = load(i, UInt8.self) != 0 ? 1 : 0 }
        case .u8: for i in 0..<n { out[i] = Float(load(i, UInt8.self)) }
        case .i8: for i in 0..<n { out[i] = Float(load(i, Int8.self)) }
        case .u16: for i in 0..<n { out[i] = Float(load(i, UInt16.self)) }
        case .i16: for i in 0..<n { out[i] = Float(load(i, Int16.self)) }
        case .u32: for i in 0..<n { out[i] = Float(load(i, UInt32.self)) }
        case .i32: for i in 0..<n { out[i] = Float(load(i, Int32.self)) }
        case .u64: for i in 0..<n { out[i] = Float(load(i, UInt64.self)) }
        case .i64: for i in 0..<n { out[i] = Float(load(i, Int64.self)) }
        }
    }
}
