#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libc's write(2) (the name is shadowed inside ``GGUFWriter``).
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }

/// Builds a GGUF (version 3 by default) file: metadata of every type, tensors of any ggml type.
///
/// Tensors are given as raw block bytes, as Floats to encode (see ``GGMLQuantizer``), or as
/// all-zero data that ``write(to:)`` skips over, leaving a sparse file: an 8B-shaped F16 model
/// costs only its header on disk.
///
/// ```swift
/// var w = GGUFWriter()
/// w.addMetadata("general.architecture", .string("llama"))
/// try w.addTensor(name: "blk.0.attn_k.weight", shape: [192, 576], floats: k, as: .q8_0)
/// try w.write(to: "model.gguf")
/// ```
public struct GGUFWriter: Sendable {
    /// A tensor to write.
    public struct Tensor: Sendable {
        /// The name.
        public var name: String
        /// Shape in PyTorch order ([out, in] for a weight); the file stores it reversed as ggml's `ne`.
        public var shape: [Int]
        /// The ggml type.
        public var type: GGMLType
        /// The encoded bytes, or nil for all-zero data written sparsely.
        public var data: [UInt8]?
        /// The data length in bytes.
        public var byteCount: Int
    }

    /// The GGUF version written (2 or 3).
    public var version: Int
    /// The data alignment; written as `general.alignment` when it is not the default 32.
    public private(set) var alignment: Int
    /// Metadata in the order it will be written.
    public private(set) var metadata: [GGUFMetadataEntry] = []
    /// Tensors in the order they will be written.
    public private(set) var tensors: [Tensor] = []

    /// Creates an empty writer.
    /// - Parameters:
    ///   - version: 3 (default) or 2; the two differ only in what readers accept.
    ///   - alignment: A power of two (default 32).
    public init(version: Int = 3, alignment: Int = GGUFFile.defaultAlignment) {
        self.version = version
        self.alignment = alignment > 0 && alignment & (alignment - 1) == 0 ? alignment : GGUFFile.defaultAlignment
        if self.alignment != GGUFFile.defaultAlignment {
            metadata.append(GGUFMetadataEntry(key: "general.alignment", value: .uint32(UInt32(self.alignment))))
        }
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key in place.
    public mutating func addMetadata(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append(GGUFMetadataEntry(key: key, value: value))
        }
    }

    /// Adds a tensor from encoded ggml bytes.
    /// - Parameters:
    ///   - name: A name not used yet.
    ///   - shape: PyTorch order; its last dimension must be a whole number of `type`'s blocks.
    ///   - type: The ggml type of `data`.
    ///   - data: Exactly the bytes `shape` needs in `type`.
    /// - Throws: ``TensorFileError`` for a duplicate name, too many dimensions, or a length mismatch.
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, data: [UInt8]) throws {
        let needed = try byteCount(name: name, shape: shape, type: type)
        guard data.count == needed else {
            throw TensorFileError(path: "<GGUF writer>", "shape \(shape) of \(type.name) needs \(needed) bytes, got \(data.count)",
                                  at: "tensor '\(name)'")
        }
        tensors.append(Tensor(name: name, shape: shape, type: type, data: data, byteCount: needed))
    }

    /// Adds a tensor from Float values (row-major in `shape` order), encoded as `type`.
    /// - Throws: ``TensorFileError`` when the count disagrees with `shape` or `type` cannot be encoded.
    public mutating func addTensor(name: String, shape: [Int], floats: [Float], as type: GGMLType) throws {
        guard let count = CheckedSize.product(shape), count == floats.count else {
            throw TensorFileError(path: "<GGUF writer>", "shape \(shape) disagrees with \(floats.count) values", at: "tensor '\(name)'")
        }
        _ = try byteCount(name: name, shape: shape, type: type)
        guard let bytes = GGMLQuantizer.quantize(floats, as: type) else {
            throw TensorFileError(path: "<GGUF writer>", "cannot encode Float values as \(type.name)", at: "tensor '\(name)'")
        }
        try addTensor(name: name, shape: shape, type: type, data: bytes)
    }

    /// Adds a tensor whose data is all zero bytes, written sparsely (no disk blocks, no memory).
    /// - Throws: ``TensorFileError`` for a duplicate name, too many dimensions or an impossible size.
    public mutating func addZeroTensor(name: String, shape: [Int], type: GGMLType) throws {
        let needed = try byteCount(name: name, shape: shape, type: type)
        tensors.append(Tensor(name: name, shape: shape, type: type, data: nil, byteCount: needed))
    }

    private func byteCount(name: String, shape: [Int], type: GGMLType) throws -> Int {
        let at = "tensor '\(name)'"
        guard !tensors.contains(where: { $0.name == name }) else {
            throw TensorFileError(path: "<GGUF writer>", "duplicate tensor name", at: at)
        }
        guard shape.count <= GGUFFile.maxDimensions else {
            throw TensorFileError(path: "<GGUF writer>", "\(shape.count) dimensions, at most \(GGUFFile.maxDimensions) allowed", at: at)
        }
        let row = shape.last ?? 1
        guard let elements = CheckedSize.product(shape), let rowBytes = type.rowByteCount(elements: row),
              let total = CheckedSize.multiply(rowBytes, row == 0 ? 0 : elements / row) else {
            throw TensorFileError(path: "<GGUF writer>", "shape \(shape) is not a whole number of \(type.name) blocks per row", at: at)
        }
        return total
    }

    /// The header: magic, version, counts, metadata and tensor infos, padded to the alignment.
    public func header() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) {
            put(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        }
        func putValue(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .float64(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s)
            case .array(let type, let elements):
                put(type.rawValue)
                put(UInt64(elements.count))
                for e in elements { putValue(e) }
            }
        }
        put(GGUFFile.magic)
        put(UInt32(version))
        put(UInt64(tensors.count))
        put(UInt64(metadata.count))
        for e in metadata {
            putString(e.key)
            put(e.value.type.rawValue)
            putValue(e.value)
        }
        for (t, offset) in zip(tensors, dataOffsets().offsets) {
            putString(t.name)
            put(UInt32(t.shape.count))
            for d in t.shape.reversed() { put(UInt64(d)) }
            put(t.type.rawValue)
            put(UInt64(offset))
        }
        out.append(contentsOf: repeatElement(0, count: padding(out.count)))
        return out
    }

    private func padding(_ n: Int) -> Int { (alignment - n % alignment) % alignment }

    /// Each tensor's offset within the data section, and the section's total length.
    private func dataOffsets() -> (offsets: [Int], total: Int) {
        var offsets: [Int] = [], at = 0
        for t in tensors {
            offsets.append(at)
            at += t.byteCount
            at += padding(at)
        }
        return (offsets, at)
    }

    /// The whole file in memory (zero tensors written out as zeros); for small files and tests.
    public func serialized() -> [UInt8] {
        var out = header()
        for t in tensors {
            if let data = t.data { out.append(contentsOf: data) } else { out.append(contentsOf: repeatElement(0, count: t.byteCount)) }
            out.append(contentsOf: repeatElement(0, count: padding(out.count)))
        }
        return out
    }

    /// Writes the file to `path` (via a temporary file renamed into place); zero tensors are skipped
    /// over, so they take no disk space on file systems with sparse files.
    /// - Throws: ``TensorFileError`` when the file cannot be written.
    public func write(to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TensorFileError(path: path, "cannot create: \(String(cString: strerror(errno)))") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        func fail(_ what: String) -> TensorFileError {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return TensorFileError(path: path, "cannot write \(what): \(reason)")
        }
        func writeAll(_ bytes: [UInt8], _ what: String) throws {
            try bytes.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var done = 0
                while done < raw.count {
                    let n = systemWrite(fd, base + done, raw.count - done)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw fail(what) }
                    done += n
                }
            }
        }
        let header = header()
        try writeAll(header, "header")
        var position = header.count
        for t in tensors {
            if let data = t.data {
                try writeAll(data, "tensor '\(t.name)'")
            } else if t.byteCount > 0 {
                guard lseek(fd, off_t(t.byteCount), SEEK_CUR) >= 0 else { throw fail("tensor '\(t.name)'") }
            }
            position += t.byteCount
            let pad = padding(position)
            if pad > 0 {
                guard lseek(fd, off_t(pad), SEEK_CUR) >= 0 else { throw fail("padding") }
                position += pad
            }
        }
        guard ftruncate(fd, off_t(position)) == 0 else { throw fail("file length") }
        closed = true
        guard close(fd) == 0 else { throw fail("file") }
        guard rename(temporary, path) == 0 else { throw fail("file (rename)") }
    }
}
