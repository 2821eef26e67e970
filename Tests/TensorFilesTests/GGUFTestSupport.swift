import Foundation
import Testing
@testable import TensorFiles

/// Paths of the repository, found from this file.
enum GGUFTestPaths {
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url
    }()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static let smolLM2 = path("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let golden = path("Tests/Golden/gguf")
    static let corpus = path("Tests/Corpus/gguf")

    /// The SmolLM2 file, or a recorded failure saying how to get it.
    static func requireSmolLM2() -> String? {
        guard FileManager.default.fileExists(atPath: smolLM2) else {
            Issue.record("missing \(smolLM2): run `make models` (tests need the real model)")
            return nil
        }
        return smolLM2
    }

    /// A golden JSON document from Tests/Golden/gguf.
    static func goldenJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: golden).appendingPathComponent(name))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TensorFileError(path: name, "golden file is not a JSON object")
        }
        return object
    }

    /// A fresh temporary file path.
    static func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-\(UUID().uuidString)-\(name)").path
    }
}

/// SHA-256 (FIPS 180-4), enough to compare tensors with golden hashes without a package dependency.
struct SHA256Digest {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// The hex digest of `bytes`.
    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var w = [UInt32](repeating: 0, count: 64)
        func compress(_ block: UnsafeRawBufferPointer) {
            for i in 0..<16 { w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
            for i in 16..<64 {
                let s0 = w[i - 15].rotatedRight(7) ^ w[i - 15].rotatedRight(18) ^ (w[i - 15] >> 3)
                let s1 = w[i - 2].rotatedRight(17) ^ w[i - 2].rotatedRight(19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        let full = bytes.count / 64 * 64
        var offset = 0
        while offset < full {
            compress(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 64)]))
            offset += 64
        }
        var tail = [UInt8](bytes[full...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        withUnsafeBytes(of: (UInt64(bytes.count) * 8).bigEndian) { tail.append(contentsOf: $0) }
        tail.withUnsafeBytes { t in
            for o in stride(from: 0, to: t.count, by: 64) { compress(UnsafeRawBufferPointer(rebasing: t[o..<(o + 64)])) }
        }
        return h.map { v in
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }

    /// The hex digest of Float values as little-endian float32 bytes (what the golden scripts hash).
    static func hex(floats: [Float]) -> String {
        floats.withUnsafeBytes { hex($0) }
    }

    /// The hex digest of a byte array.
    static func hex(bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }
}

/// Σ (2i+1)·bits(values[i]) mod 2⁶⁴ as 16 hex digits (gguf_golden.py's `weighted_sum`): cheap enough
/// for debug builds on all 135M SmolLM2 values, and any single changed value changes it.
func weightedChecksum(_ values: [Float]) -> String {
    values.withUnsafeBufferPointer { v in
        var sum: UInt64 = 0, weight: UInt64 = 1
        for x in v {
            sum = sum &+ UInt64(x.bitPattern) &* weight
            weight = weight &+ 2
        }
        let hex = String(sum, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The first values' float32 bit patterns, as the golden files list them.
func firstBits(_ values: [Float], _ n: Int) -> [Int] { values.prefix(n).map { Int($0.bitPattern) } }

extension UInt32 {
    fileprivate func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}

@Suite struct GGUFTestSupportTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256MatchesTheStandardVectors(input: String, digest: String) {
        #expect(SHA256Digest.hex(bytes: Array(input.utf8)) == digest)
    }
}
