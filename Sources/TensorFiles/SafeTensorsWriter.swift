import LinearAlgebra

/// Builds a safetensors file in memory and writes it atomically.
///
/// Tensors are laid out in the order they are added; the header is padded with spaces to a
/// multiple of 8 bytes (as the official writer does), so data offsets stay 8-byte aligned when
/// every tensor's size is.
///
/// ```swift
/// var w = SafeTensorsWriter(metadata: ["format": "kvscope-factors"])
/// try w.add("layer.0.k.A", floats: a.storage, shape: [r, d], as: .f16)
/// try w.write(to: "factors.safetensors")
/// ```
public struct SafeTensorsWriter: Sendable {
    /// The `__metadata__` string map (omitted from the header when empty).
    public var metadata: [String: String]
    private var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], data: [UInt8])] = []
    private var names = Set<String>()

    /// An empty file with the given metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names of the tensors added so far, in order.
    public var tensorNames: [String] { entries.map(\.name) }

    /// Adds a tensor from raw little-endian bytes.
    /// - Throws: ``TensorFileError`` for a duplicate or reserved name, or bytes that disagree with the shape.
    public mutating func add(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws {
        guard name != "__metadata__" else { throw TensorFileError(path: name, "the name __metadata__ is reserved") }
        guard !names.contains(name) else { throw TensorFileError(path: name, "duplicate tensor name") }
        guard let n = CheckedSize.product(shape), let expected = CheckedSize.multiply(n, dtype.size), expected == bytes.count else {
            throw TensorFileError(path: name, "shape \(shape) of \(dtype.rawValue) does not match \(bytes.count) bytes")
        }
        names.insert(name)
        entries.append((name, dtype, shape, bytes))
    }

    /// Adds Float values stored as F32, F16 (round to nearest even), BF16 (round to nearest even) or F64.
    /// - Throws: ``TensorFileError`` for a non-float dtype, a duplicate name or a count that disagrees with the shape.
    public mutating func add(_ name: String, floats: [Float], shape: [Int], as dtype: SafeTensorsDType = .f32) throws {
        var bytes: [UInt8]
        switch dtype {
        case .f32: bytes = floats.withUnsafeBytes { Array($0) }
        case .f16: bytes = floats.map(HalfPrecision.halfFromFloat).withUnsafeBytes { Array($0) }
        case .bf16: bytes = floats.map(HalfPrecision.bfloat16FromFloat).withUnsafeBytes { Array($0) }
        case .f64: bytes = floats.map(Double.init).withUnsafeBytes { Array($0) }
        default:
            throw TensorFileError(path: name, "Float data cannot be stored as \(dtype.rawValue); use add(_:int64s:shape:as:)")
        }
        try add(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Adds Double values stored as F64 (exact) or narrowed to F32, F16 or BF16.
    /// - Throws: ``TensorFileError`` as ``add(_:floats:shape:as:)``.
    public mutating func add(_ name: String, doubles: [Double], shape: [Int], as dtype: SafeTensorsDType = .f64) throws {
        if dtype == .f64 {
            try add(name, dtype: .f64, shape: shape, bytes: doubles.withUnsafeBytes { Array($0) })
        } else {
            try add(name, floats: doubles.map(Float.init), shape: shape, as: dtype)
        }
    }

    /// Adds integers stored as any integer dtype or BOOL (nonzero is true).
    /// - Throws: ``TensorFileError`` for a value that does not fit the dtype, a float dtype,
    ///   a duplicate name or a count that disagrees with the shape.
    public mutating func add(_ name: String, int64s: [Int64], shape: [Int], as dtype: SafeTensorsDType = .i64) throws {
        func pack<T: FixedWidthInteger>(_: T.Type) throws -> [UInt8] {
            var out = [UInt8]()
            out.reserveCapacity(int64s.count * MemoryLayout<T>.size)
            for v in int64s {
                guard let x = T(exactly: v) else {
                    throw TensorFileError(path: name, "value \(v) does not fit in \(dtype.rawValue)")
                }
                withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            }
            return out
        }
        let bytes: [UInt8]
        switch dtype {
        case .bool: bytes = int64s.map { $0 != 0 ? 1 : 0 }
        case .u8: bytes = try pack(UInt8.self)
        case .i8: bytes = try pack(Int8.self)
        case .u16: bytes = try pack(UInt16.self)
        case .i16: bytes = try pack(Int16.self)
        case .u32: bytes = try pack(UInt32.self)
        case .i32: bytes = try pack(Int32.self)
        case .u64: bytes = try pack(UInt64.self)
        case .i64: bytes = try pack(Int64.self)
        case .f16, .bf16, .f32, .f64:
            throw TensorFileError(path: name, "integer data cannot be stored as \(dtype.rawValue); use add(_:floats:shape:as:)")
        }
        try add(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Adds a matrix as a 2-D tensor [rows, cols].
    /// - Throws: ``TensorFileError`` as ``add(_:floats:shape:as:)``.
    public mutating func add(_ name: String, matrix: Matrix, as dtype: SafeTensorsDType = .f32) throws {
        try add(name, floats: matrix.storage, shape: [matrix.rows, matrix.cols], as: dtype)
    }

    /// The complete file: header length, padded JSON header, data.
    public func serialized() -> [UInt8] {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }
                .map { "\(JSONEncoding.quoted($0.key)):\(JSONEncoding.quoted($0.value))" }
            json += "\"__metadata__\":{" + pairs.joined(separator: ",") + "}"
            first = false
        }
        var offset = 0
        for e in entries {
            if !first { json += "," }
            first = false
            let shape = e.shape.map(String.init).joined(separator: ",")
            json += "\(JSONEncoding.quoted(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.data.count)]}"
            offset += e.data.count
        }
        json += "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for e in entries { out.append(contentsOf: e.data) }
        return out
    }

    /// Writes the file atomically (temporary file in the same directory, then rename).
    /// - Parameter overwrite: when false, an existing file at `path` is an error.
    /// - Throws: ``TensorFileError`` for I/O errors or an existing file when `overwrite` is false.
    public func write(to path: String, overwrite: Bool = true) throws {
        let out = try AtomicFileWriter(path: path, overwrite: overwrite)
        try out.write(serialized())
        try out.commit()
    }
}
