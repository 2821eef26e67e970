import LinearAlgebra

/// The element types kvscope reads and writes in .npy files (little-endian floats).
public enum NpyDType: String, Sendable, CaseIterable {
    case float16 = "<f2"
    case float32 = "<f4"
    case float64 = "<f8"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float16: return 2
        case .float32: return 4
        case .float64: return 8
        }
    }

    /// The matching safetensors-style dtype name (F16, F32, F64), used as ``TensorInfo/dtype``.
    public var displayName: String {
        switch self {
        case .float16: return "F16"
        case .float32: return "F32"
        case .float64: return "F64"
        }
    }
}

/// A NumPy .npy file (format versions 1.0, 2.0 and 3.0), memory-mapped, holding one C-order
/// little-endian float array. It is a ``TensorFile`` with one tensor named after the file
/// (its last path component without `.npy`).
///
/// Fortran-order arrays, big-endian data and other dtypes are rejected with a
/// ``TensorFileError`` that says so.
public final class NpyFile: TensorFile {
    public let path: String
    public let file: MappedFile
    public let tensors: [TensorInfo]
    /// The format version (major, minor), e.g. (1, 0).
    public let version: (major: Int, minor: Int)
    /// The element type.
    public let dtype: NpyDType
    /// The array's shape (empty for a 0-d array).
    public let shape: [Int]

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Maps and parses `path`.
    /// - Throws: ``TensorFileError`` for a bad magic, version, header, dtype, order or data length.
    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Parses an already mapped file.
    /// - Throws: ``TensorFileError`` as ``init(path:)``.
    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        var r = ByteReader(file.bytes, path: path)
        try r.require(8, "npy magic and version")
        guard Self.magic.indices.allSatisfy({ file.bytes[$0] == Self.magic[$0] }) else {
            throw TensorFileError(path: path, "not an npy file (bad magic; expected \\x93NUMPY)", at: "offset 0")
        }
        try r.skip(6, "magic")
        let major = Int(try r.read(UInt8.self, "major version"))
        let minor = Int(try r.read(UInt8.self, "minor version"))
        guard (1...3).contains(major), minor == 0 else {
            throw TensorFileError(path: path, "unsupported npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)",
                                  at: "offset 6")
        }
        version = (major, minor)
        let headerLength = major == 1 ? Int(try r.read(UInt16.self, "header length"))
                                      : Int(try r.read(UInt32.self, "header length"))
        let headerStart = r.offset
        guard headerLength <= r.remaining else {
            throw TensorFileError(path: path, "header length \(headerLength) runs past the end of the file (\(r.remaining) bytes left)",
                                  at: "offset \(headerStart - (major == 1 ? 2 : 4))")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file.bytes[headerStart..<(headerStart + headerLength)])
        // v1/v2 headers are latin-1, v3 headers UTF-8; the dict we accept is ASCII either way.
        let header: String
        if major == 3 {
            guard let s = String(validatingUTF8Bytes: headerBytes) else {
                throw TensorFileError(path: path, "header is not valid UTF-8", at: "offset \(headerStart)")
            }
            header = s
        } else {
            header = String(headerBytes.map { Character(Unicode.Scalar($0)) })
        }
        let dict = try NpyHeader.parse(header, path: path, at: headerStart)
        guard !dict.fortranOrder else {
            throw TensorFileError(path: path, "fortran_order arrays are not supported; save the array in C order (np.ascontiguousarray)",
                                  at: "header")
        }
        guard let dtype = NpyDType(rawValue: dict.descr) else {
            throw TensorFileError(path: path, "unsupported dtype '\(dict.descr)' (supported: <f2, <f4, <f8, little-endian)",
                                  at: "header")
        }
        self.dtype = dtype
        shape = dict.shape
        let dataStart = headerStart + headerLength
        guard let n = CheckedSize.product(shape), let bytes = CheckedSize.multiply(n, dtype.size) else {
            throw TensorFileError(path: path, "shape \(shape) has too many elements (the product overflows)", at: "header")
        }
        let available = file.count - dataStart
        guard bytes == available else {
            throw TensorFileError(path: path, bytes > available
                                  ? "truncated data: shape \(shape) of \(dtype.rawValue) needs \(bytes) bytes, the file has \(available)"
                                  : "\(available - bytes) bytes after the data of shape \(shape)",
                                  at: "offset \(dataStart)")
        }
        var name = path.split(separator: "/").last.map(String.init) ?? path
        if name.hasSuffix(".npy") { name.removeLast(4) }
        tensors = [TensorInfo(name: name, shape: shape, dtype: dtype.displayName, byteOffset: dataStart, byteCount: bytes)]
    }

    /// The single array's data converted to Float.
    public func floats() -> [Float] {
        let raw = rawBytes(tensors[0])
        let n = tensors[0].byteCount / dtype.size
        switch dtype {
        case .float32: return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .float16: return (0..<n).map { HalfPrecision.floatFromHalf(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .float64: return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        }
    }

    /// The single array's data converted to Double (exact for every supported dtype).
    public func doubles() -> [Double] {
        if dtype == .float64 {
            let raw = rawBytes(tensors[0])
            return (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        }
        return floats().map(Double.init)
    }

    /// The array's data converted to Float.
    /// - Throws: ``TensorFileError`` when `tensor` is not this file's tensor.
    public func floats(_ tensor: TensorInfo) throws -> [Float] {
        guard tensor == tensors[0] else { throw TensorFileError(path: path, "no tensor named \(tensor.name)") }
        return floats()
    }

    /// Writes a C-order float array as .npy, atomically.
    ///
    /// - Parameters:
    ///   - values: the elements in C order; their count must be the product of `shape`.
    ///   - dtype: the stored element type (F16 and F32 narrow Double with round to nearest even).
    ///   - version: the format major version; nil picks 1.0 when the header fits in 65,535 bytes, else 2.0.
    ///   - overwrite: when false, an existing file is an error.
    /// - Throws: ``TensorFileError`` for a count/shape mismatch, an impossible version or an I/O error.
    public static func write(_ values: [Double], shape: [Int], dtype: NpyDType = .float64, version: Int? = nil,
                             to path: String, overwrite: Bool = true) throws {
        let out = try AtomicFileWriter(path: path, overwrite: overwrite)
        try out.write(serialized(values, shape: shape, dtype: dtype, version: version, path: path))
        try out.commit()
    }

    /// Writes Float values as .npy, atomically; see ``write(_:shape:dtype:version:to:overwrite:)``.
    /// - Throws: ``TensorFileError`` as ``write(_:shape:dtype:version:to:overwrite:)``.
    public static func write(_ values: [Float], shape: [Int], dtype: NpyDType = .float32, version: Int? = nil,
                             to path: String, overwrite: Bool = true) throws {
        let out = try AtomicFileWriter(path: path, overwrite: overwrite)
        try out.write(serialized(values.map(Double.init), shape: shape, dtype: dtype, version: version, path: path))
        try out.commit()
    }

    /// The bytes of a .npy file (magic, version, padded header dict, data).
    /// - Throws: ``TensorFileError`` for a count/shape mismatch or a header too long for version 1.
    public static func serialized(_ values: [Double], shape: [Int], dtype: NpyDType, version: Int? = nil,
                                  path: String = "npy") throws -> [UInt8] {
        guard let n = CheckedSize.product(shape), n == values.count else {
            throw TensorFileError(path: path, "\(values.count) values do not fill shape \(shape)")
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        // As numpy writes it: room for the first axis to grow to 21 digits, then spaces so that
        // magic + version + length + header is a multiple of 64 (1 to 64 of them), then '\n'.
        var dict = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = shape.first { dict += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        func padded(lengthBytes: Int) -> [UInt8] {
            let unpadded = 6 + 2 + lengthBytes + dict.utf8.count + 1
            let pad = 64 - unpadded % 64
            return Array(dict.utf8) + [UInt8](repeating: 0x20, count: pad) + [0x0A]
        }
        var major = version ?? 1
        var header = padded(lengthBytes: major == 1 ? 2 : 4)
        if version == nil, header.count > Int(UInt16.max) {
            major = 2
            header = padded(lengthBytes: 4)
        }
        guard (1...3).contains(major) else { throw TensorFileError(path: path, "npy version \(major) does not exist") }
        guard major != 1 || header.count <= Int(UInt16.max) else {
            throw TensorFileError(path: path, "header of \(header.count) bytes does not fit npy version 1")
        }
        var out = magic + [UInt8(major), 0]
        if major == 1 {
            withUnsafeBytes(of: UInt16(header.count).littleEndian) { out.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(header.count).littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: header)
        out.reserveCapacity(out.count + n * dtype.size)
        for v in values {
            switch dtype {
            case .float16: withUnsafeBytes(of: HalfPrecision.halfFromFloat(Float(v)).littleEndian) { out.append(contentsOf: $0) }
            case .float32: withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { out.append(contentsOf: $0) }
            case .float64: withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }
}

/// The header dict of an .npy file: a Python literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Parses the dict; exactly the keys descr, fortran_order and shape are accepted.
    static func parse(_ text: String, path: String, at offset: Int) throws -> NpyHeader {
        var s = Substring(text)
        func fail(_ what: String) -> TensorFileError {
            TensorFileError(path: path, "bad npy header: \(what)", at: "offset \(offset)")
        }
        func skipSpace() { s = s.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" } }
        func eat(_ c: Character) -> Bool {
            skipSpace()
            guard s.first == c else { return false }
            s.removeFirst()
            return true
        }
        func quoted() throws -> String {
            skipSpace()
            guard let q = s.first, q == "'" || q == "\"" else { throw fail("expected a quoted string") }
            s.removeFirst()
            guard let end = s.firstIndex(of: q) else { throw fail("unterminated string") }
            let v = String(s[..<end])
            s = s[s.index(after: end)...]
            return v
        }
        guard eat("{") else { throw fail("expected '{'") }
        var descr: String?, fortran: Bool?, shape: [Int]?
        while !eat("}") {
            let key = try quoted()
            guard eat(":") else { throw fail("expected ':' after '\(key)'") }
            skipSpace()
            switch key {
            case "descr":
                guard descr == nil else { throw fail("duplicate key 'descr'") }
                descr = try quoted()
            case "fortran_order":
                guard fortran == nil else { throw fail("duplicate key 'fortran_order'") }
                if s.hasPrefix("True") { fortran = true; s = s.dropFirst(4) }
                else if s.hasPrefix("False") { fortran = false; s = s.dropFirst(5) }
                else { throw fail("fortran_order must be True or False") }
            case "shape":
                guard shape == nil else { throw fail("duplicate key 'shape'") }
                guard eat("(") else { throw fail("shape must be a tuple") }
                var dims: [Int] = []
                while !eat(")") {
                    skipSpace()
                    let digits = s.prefix { $0.isASCII && $0.isNumber }
                    guard !digits.isEmpty, digits.count <= 18, let d = Int(digits) else {
                        throw fail("shape entries must be non-negative integers")
                    }
                    dims.append(d)
                    s = s.dropFirst(digits.count)
                    if !eat(",") {
                        guard eat(")") else { throw fail("expected ',' or ')' in shape") }
                        break
                    }
                }
                shape = dims
            default:
                throw fail("unexpected key '\(key)'")
            }
            if !eat(",") {
                guard eat("}") else { throw fail("expected ',' or '}'") }
                break
            }
        }
        skipSpace()
        guard s.isEmpty else { throw fail("unexpected text after the dict") }
        guard let d = descr, let f = fortran, let sh = shape else {
            throw fail("missing key (descr, fortran_order and shape are required)")
        }
        return NpyHeader(descr: d, fortranOrder: f, shape: sh)
    }
}
