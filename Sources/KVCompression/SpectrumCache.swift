import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A disk cache of spectra, one small binary file per caller-provided key.
///
/// Keys name what was decomposed (file identity + tensor name + basis/source), e.g.
/// `"/path/model.gguf|size=…|mtime=…|blk.3.attn_k.weight|weights"`. The file name is a 64-bit
/// FNV-1a hash of the key; the full key is stored inside and compared on load, so a hash
/// collision reads as a miss.
///
/// Format, version 1, little-endian: magic `KVSPECTR` (8 bytes), version u32, key length u32,
/// key UTF-8, rows u64, cols u64, count u32, count × f32 singular values, then the FNV-1a-64
/// checksum (u64) of every preceding byte. A file that is short, has another magic, version,
/// key or checksum is treated as absent (and overwritten by the next store). Writes go to a
/// temporary file in the same directory and are renamed into place, so readers never see a
/// partial file.
public struct SpectrumCache: Sendable {
    /// The folder holding the cache files.
    public let directory: URL

    static let magic = Array("KVSPECTR".utf8)
    static let version: UInt32 = 1

    /// A cache in `directory` (created on first store).
    public init(directory: URL) { self.directory = directory }

    /// `$XDG_CACHE_HOME/kvscope/spectra`, or `~/.cache/kvscope/spectra` when XDG_CACHE_HOME is unset or empty.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        let base: URL
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg, isDirectory: true)
        } else {
            let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            base = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache", isDirectory: true)
        }
        return base.appendingPathComponent("kvscope", isDirectory: true).appendingPathComponent("spectra", isDirectory: true)
    }

    /// The file that holds `key`.
    public func fileURL(for key: String) -> URL {
        let hash = fnv1a64(Array(key.utf8))
        let hex = String(hash, radix: 16)
        return directory.appendingPathComponent(String(repeating: "0", count: 16 - hex.count) + hex + ".spectrum")
    }

    /// The cached spectrum for `key`, or nil when it is missing or the file is damaged.
    public func load(key: String) -> Spectrum? {
        guard let data = try? Data(contentsOf: fileURL(for: key)) else { return nil }
        return Self.decode([UInt8](data), expectedKey: key)
    }

    /// Stores `spectrum` under `key`, atomically (temporary file + rename).
    /// - Throws: ``KVCompressionError/io(path:message:)`` when the folder or file cannot be written.
    public func store(_ spectrum: Spectrum, key: String) throws {
        let target = fileURL(for: key)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw KVCompressionError.io(path: directory.path, message: "cannot create cache folder: \(error)")
        }
        let temp = directory.appendingPathComponent(
            ".\(target.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(UInt64.random(in: 0...UInt64.max)).tmp")
        do {
            try Data(Self.encode(spectrum, key: key)).write(to: temp)
        } catch {
            throw KVCompressionError.io(path: temp.path, message: "cannot write: \(error)")
        }
        if rename(temp.path, target.path) != 0 {
            let code = errno
            try? FileManager.default.removeItem(at: temp)
            throw KVCompressionError.io(path: target.path, message: "rename failed: \(String(cString: strerror(code)))")
        }
    }

    static func encode(_ s: Spectrum, key: String) -> [UInt8] {
        var out = magic
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let keyBytes = Array(key.utf8)
        put(version)
        put(UInt32(keyBytes.count))
        out.append(contentsOf: keyBytes)
        put(UInt64(s.rows))
        put(UInt64(s.cols))
        put(UInt32(s.singularValues.count))
        for x in s.singularValues { put(x.bitPattern) }
        put(fnv1a64(out))
        return out
    }

    static func decode(_ bytes: [UInt8], expectedKey: String) -> Spectrum? {
        var offset = 0
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, n <= bytes.count - offset else { return nil }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }
        func get<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard let slice = take(MemoryLayout<T>.size) else { return nil }
            return slice.reversed().reduce(T(0)) { ($0 << 8) | T($1) }
        }
        guard bytes.count >= 8 + 8, take(8).map(Array.init) == magic,
              get(UInt32.self) == version,
              let keyLength = get(UInt32.self), let keyBytes = take(Int(keyLength)),
              Array(keyBytes) == Array(expectedKey.utf8),
              let rows = get(UInt64.self), let cols = get(UInt64.self), let count = get(UInt32.self),
              rows <= UInt64(Int.max), cols <= UInt64(Int.max)
        else { return nil }
        var values: [Float] = []
        values.reserveCapacity(Int(min(count, 1 << 20)))
        for _ in 0..<count {
            guard let bits = get(UInt32.self) else { return nil }
            values.append(Float(bitPattern: bits))
        }
        let payloadEnd = offset
        guard let checksum = get(UInt64.self), offset == bytes.count,
              checksum == fnv1a64(bytes[0..<payloadEnd]) else { return nil }
        return try? Spectrum(singularValues: values, rows: Int(rows), cols: Int(cols))
    }
}

/// FNV-1a, 64-bit.
func fnv1a64<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
