import Foundation
import Testing
@testable import TensorFiles

/// Paths and helpers shared by the safetensors, npy and catalog tests.
enum TestPaths {
    /// The repository root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func repo(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static let minilm = repo("models/minilm/model.safetensors")

    /// A fresh temporary directory for one test.
    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    /// Parses a golden JSON file with Foundation (independent of the code under test).
    static func json(_ relative: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: repo(relative))))
    }

    /// Fails the test with a clear message when a real model is missing (`make test` fetches them).
    static func requireModel(_ path: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("model missing: \(path); run `make models` first")
            return false
        }
        return true
    }
}

/// SHA-256 (FIPS 180-4), for comparing tensor data with hashes from the Python references.
enum SHA256 {
    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var tail = Array(bytes[(bytes.count / 64 * 64)...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        let bitLength = UInt64(bytes.count) * 8
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        // Unsafe buffers keep the debug build's per-access overhead low (the MiniLM file is 90 MB).
        let w = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
        defer { w.deallocate() }
        k.withUnsafeBufferPointer { kp in
            h.withUnsafeMutableBufferPointer { hp in
                func block(_ p: UnsafeRawPointer) {
                    for i in 0..<16 { w[i] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                    for i in 16..<64 {
                        let x = w[i - 15], y = w[i - 2]
                        let s0 = (x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)
                        let s1 = (y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)
                        w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                    }
                    var a = hp[0], b = hp[1], c = hp[2], d = hp[3], e = hp[4], f = hp[5], g = hp[6], hh = hp[7]
                    for i in 0..<64 {
                        let s1 = (e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)
                        let t1 = hh &+ s1 &+ ((e & f) ^ (~e & g)) &+ kp[i] &+ w[i]
                        let s0 = (a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)
                        let t2 = s0 &+ ((a & b) ^ (a & c) ^ (b & c))
                        hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                    }
                    hp[0] = hp[0] &+ a; hp[1] = hp[1] &+ b; hp[2] = hp[2] &+ c; hp[3] = hp[3] &+ d
                    hp[4] = hp[4] &+ e; hp[5] = hp[5] &+ f; hp[6] = hp[6] &+ g; hp[7] = hp[7] &+ hh
                }
                if let base = bytes.baseAddress {
                    for start in stride(from: 0, to: bytes.count / 64 * 64, by: 64) { block(base + start) }
                }
                tail.withUnsafeBytes { t in
                    for start in stride(from: 0, to: t.count, by: 64) { block(t.baseAddress! + start) }
                }
            }
        }
        return h.map { let s = String($0, radix: 16); return String(repeating: "0", count: 8 - s.count) + s }.joined()
    }

    static func hex(_ floats: [Float]) -> String { floats.withUnsafeBytes { hex($0) } }

    /// The digest of large inputs, from coreutils' sha256sum when present (the Swift version
    /// above takes ~0.3 s per MB in a debug build); ``SHA256Tests`` checks that both agree.
    static func fastHex(_ floats: [Float]) -> String {
        guard floats.count * 4 > 1 << 20, let viaTool = try? toolHex(floats) else { return hex(floats) }
        return viaTool
    }

    static func toolHex(_ floats: [Float]) throws -> String? {
        let tool = "/usr/bin/sha256sum"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        floats.withUnsafeBytes { input.fileHandleForWriting.write(Data($0)) }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init)
    }
}


@Suite struct SHA256Tests {
    @Test func knownDigests() {
        let empty = [UInt8]().withUnsafeBytes { SHA256.hex($0) }
        #expect(empty == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let abc = Array("abc".utf8).withUnsafeBytes { SHA256.hex($0) }
        #expect(abc == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array(String(repeating: "a", count: 1000).utf8).withUnsafeBytes { SHA256.hex($0) }
        #expect(long == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func theToolAgreesWithTheSwiftDigest() throws {
        let floats = (0..<300_000).map { Float($0) * 0.37 - 1000 }
        let tool = try SHA256.toolHex(floats)
        if let tool { #expect(tool == SHA256.hex(floats)) }
    }
}
