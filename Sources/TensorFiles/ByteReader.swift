/// A bounds-checked little-endian cursor over a byte buffer. Every read that would pass the end
/// throws a ``TensorFileError`` naming the offset, never traps.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public let path: String
    /// The current offset from the start of `bytes`.
    public var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.offset = offset
    }

    /// Bytes left after the cursor.
    public var remaining: Int { bytes.count - offset }

    /// Throws unless `count` more bytes are available.
    public func require(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw TensorFileError(path: path, "truncated: \(what()) needs \(count) bytes, \(max(0, bytes.count - offset)) left",
                                  at: "offset \(offset)")
        }
    }

    @inline(__always)
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try require(MemoryLayout<T>.size, what())
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    public mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    public mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// Reads `count` bytes as UTF-8; invalid UTF-8 is an error, not a replacement.
    public mutating func readUTF8(count: Int, _ what: @autoclosure () -> String) throws -> String {
        try require(count, what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        guard let s = String(validatingUTF8Bytes: slice) else {
            throw TensorFileError(path: path, "\(what()) is not valid UTF-8", at: "offset \(offset)")
        }
        offset += count
        return s
    }

    /// Skips `count` bytes.
    public mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws {
        try require(count, what())
        offset += count
    }
}

extension String {
    /// Decodes UTF-8, returning nil for invalid sequences.
    init?(validatingUTF8Bytes bytes: UnsafeRawBufferPointer) {
        var it = bytes.makeIterator()
        var scalars = String.UnicodeScalarView()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let s): scalars.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }
}

/// Overflow-checked products and sums for sizes that come from files.
public enum CheckedSize {
    /// The product of `dims`, or nil if any is negative or the product overflows. A zero anywhere
    /// makes it 0 whatever the order (partial products of the others are not formed).
    public static func product(_ dims: [Int]) -> Int? {
        guard dims.allSatisfy({ $0 >= 0 }) else { return nil }
        if dims.contains(0) { return 0 }
        var p = 1
        for d in dims {
            let (r, o) = p.multipliedReportingOverflow(by: d)
            if o { return nil }
            p = r
        }
        return p
    }

    /// a × b, or nil on overflow or a negative operand.
    public static func multiply(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    /// a + b, or nil on overflow or a negative operand.
    public static func add(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
}
