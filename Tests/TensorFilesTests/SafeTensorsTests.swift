import Foundation
import Testing
@testable import TensorFiles

/// The safetensors reader against the official Python reader (goldens from
/// Tests/Reference/safetensors_golden.py), and the writer by round trip.
@Suite struct SafeTensorsGoldenTests {
    struct GoldenTensor {
        var name: String, dtype: String, shape: [Int], sha256: String, valuesHex: [String]?
    }

    static func golden(_ object: Any?) -> [GoldenTensor] {
        guard let list = object as? [[String: Any]] else { return [] }
        return list.compactMap { d in
            guard let name = d["name"] as? String, let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
                  let sha = d["sha256_f32"] as? String else { return nil }
            return GoldenTensor(name: name, dtype: dtype, shape: shape, sha256: sha, valuesHex: d["values_f32_hex"] as? [String])
        }
    }

    /// Compares every tensor: name, dtype, shape, float32 data hash and (when given) each value's bits.
    func compare(_ file: SafeTensorsFile, with golden: [GoldenTensor]) throws {
        #expect(file.tensors.count == golden.count)
        for g in golden {
            guard let t = file.tensor(named: g.name) else {
                Issue.record("missing tensor \(g.name)")
                continue
            }
            #expect(t.dtype == g.dtype, "\(g.name)")
            #expect(t.shape == g.shape, "\(g.name)")
            let values = try file.floats(t)
            #expect(SHA256.fastHex(values) == g.sha256, "\(g.name): float32 data differs from the official reader")
            if let hex = g.valuesHex {
                let ours = values.map { String($0.bitPattern, radix: 16) }
                let theirs = hex.map { String(UInt32($0, radix: 16) ?? 0, radix: 16) }
                #expect(ours == theirs, "\(g.name)")
            }
        }
    }

    @Test func everyDTypeMatchesTheOfficialReader() throws {
        let facts = try TestPaths.json("Tests/Golden/safetensors/fixtures.json") as? [String: Any]
        for fixture in ["all_dtypes.safetensors", "bf16.safetensors"] {
            let entry = facts?[fixture] as? [String: Any]
            let golden = Self.golden(entry?["tensors"])
            #expect(golden.count > 0, "no golden tensors for \(fixture)")
            let file = try SafeTensorsFile(path: TestPaths.repo("Tests/Golden/safetensors/\(fixture)"))
            try compare(file, with: golden)
            #expect(file.metadata == (entry?["metadata"] as? [String: String]), "\(fixture) metadata")
        }
    }

    @Test func integerTensorsReadExactly() throws {
        let file = try SafeTensorsFile(path: TestPaths.repo("Tests/Golden/safetensors/all_dtypes.safetensors"))
        func ints(_ name: String) throws -> [Int64] {
            guard let t = file.tensor(named: name) else { throw TensorFileError(path: file.path, "no \(name)") }
            return try file.int64s(t)
        }
        #expect(try ints("i64") == [-(1 << 40), -1, 0, 1 << 40])
        #expect(try ints("u64") == [0, 1, 1 << 40, 1 << 62])
        #expect(try ints("u32") == [0, 1, 3_000_000_000, 4_294_967_295])
        #expect(try ints("i8") == [-128, -1, 0, 1, 127])
        #expect(try ints("bool") == [1, 0, 1, 0, 0, 1])
        let f64 = try #require(file.tensor(named: "f64"))
        #expect(throws: TensorFileError.self) { try file.int64s(f64) }
        let doubles = try file.doubles(f64)
        #expect(doubles[3] == -2.5 * 1.000001)
    }

    @Test func miniLMMatchesTheOfficialReader() throws {
        guard TestPaths.requireModel(TestPaths.minilm) else { return }
        let facts = try TestPaths.json("Tests/Golden/safetensors/minilm.json") as? [String: Any]
        let golden = Self.golden(facts?["tensors"])
        #expect(golden.count == 104)
        let file = try SafeTensorsFile(path: TestPaths.minilm)
        try compare(file, with: golden)
        #expect(file.metadata == ["format": "pt"])
    }

    @Test func openingMiniLMReadsOnlyTheHeader() throws {
        guard TestPaths.requireModel(TestPaths.minilm) else { return }
        let clock = ContinuousClock()
        var file: SafeTensorsFile?
        let elapsed = try clock.measure { file = try SafeTensorsFile(path: TestPaths.minilm) }
        #expect(file?.tensors.count == 104)
        #expect(elapsed < .milliseconds(200), "opening took \(elapsed)")
    }
}

@Suite struct SafeTensorsWriterTests {
    @Test func roundTripsEveryDTypeAndMetadata() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.safetensors"
        var w = SafeTensorsWriter(metadata: ["format": "kvscope-factors", "quote\"and\\slash": "ünïcode\n"])
        let floats: [Float] = [0, -0.0, 1, -2.5, 3.0e-8, 65504, .infinity, 1.0 / 3]
        try w.add("f32", floats: floats, shape: [2, 4])
        try w.add("f16", floats: floats, shape: [8], as: .f16)
        try w.add("bf16", floats: floats, shape: [4, 2], as: .bf16)
        try w.add("f64", doubles: [1.0 / 3, -1e300], shape: [2])
        try w.add("i64", int64s: [Int64.min, -1, 0, Int64.max], shape: [4])
        try w.add("i32", int64s: [-5, 5], shape: [2], as: .i32)
        try w.add("u8", int64s: [0, 255, 7], shape: [3], as: .u8)
        try w.add("bool", int64s: [0, 3, 1], shape: [3], as: .bool)
        try w.add("empty", floats: [], shape: [0, 5])
        try w.add("scalar", floats: [4], shape: [])
        try w.write(to: path)

        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata == w.metadata)
        #expect(file.tensors.map(\.name) == w.tensorNames)
        #expect(file.dataStart % 8 == 0)
        func t(_ n: String) throws -> TensorInfo { try #require(file.tensor(named: n)) }
        #expect(try file.floats(t("f32")).map(\.bitPattern) == floats.map(\.bitPattern))
        let halfExpected = floats.map { Float(Float16($0)) }
        #expect(try file.floats(t("f16")) == halfExpected)
        #expect(try file.floats(t("bf16"))[3] == -2.5)
        #expect(try file.floats(t("bf16"))[7] == Float(bitPattern: 0x3EAB_0000))  // 1/3 rounded to bf16
        #expect(try file.doubles(t("f64")) == [1.0 / 3, -1e300])
        #expect(try file.int64s(t("i64")) == [Int64.min, -1, 0, Int64.max])
        #expect(try file.int64s(t("i32")) == [-5, 5])
        #expect(try file.int64s(t("u8")) == [0, 255, 7])
        #expect(try file.int64s(t("bool")) == [0, 1, 1])
        #expect(try t("empty").shape == [0, 5])
        #expect(try file.floats(t("scalar")) == [4])
        #expect(try t("i32").dtype == "I32")
    }

    @Test func rejectsBadInput() throws {
        var w = SafeTensorsWriter()
        try w.add("a", floats: [1, 2], shape: [2])
        #expect(throws: TensorFileError.self) { try w.add("a", floats: [1], shape: [1]) }
        #expect(throws: TensorFileError.self) { try w.add("b", floats: [1, 2, 3], shape: [2]) }
        #expect(throws: TensorFileError.self) { try w.add("__metadata__", floats: [1], shape: [1]) }
        #expect(throws: TensorFileError.self) { try w.add("c", int64s: [300], shape: [1], as: .u8) }
        #expect(throws: TensorFileError.self) { try w.add("d", floats: [1], shape: [1], as: .i32) }
        #expect(w.tensorNames == ["a"])
    }

    @Test func writesAtomicallyAndCanRefuseToOverwrite() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/x.safetensors"
        var w = SafeTensorsWriter()
        try w.add("a", floats: [1], shape: [1])
        try w.write(to: path)
        try w.add("b", floats: [2], shape: [1])
        do {
            try w.write(to: path, overwrite: false)
            Issue.record("overwrote an existing file")
        } catch let e as TensorFileError {
            #expect(e.message.contains("refusing to overwrite"))
        }
        #expect(try SafeTensorsFile(path: path).tensors.count == 1)
        try w.write(to: path)
        #expect(try SafeTensorsFile(path: path).tensors.count == 2)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(leftovers == ["x.safetensors"], "temporary files left: \(leftovers)")
        #expect(throws: TensorFileError.self) { try w.write(to: dir + "/no/such/dir/x.safetensors") }
    }

    @Test func officialLayoutFixtureReadsBackThroughTheWriter() throws {
        // Rewriting the official fixture with our writer keeps every tensor bit-identical.
        let original = try SafeTensorsFile(path: TestPaths.repo("Tests/Golden/safetensors/all_dtypes.safetensors"))
        var w = SafeTensorsWriter(metadata: original.metadata)
        for t in original.tensors {
            let dtype = try #require(original.dtype(of: t))
            try w.add(t.name, dtype: dtype, shape: t.shape, bytes: Array(original.rawBytes(t)))
        }
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try w.write(to: dir + "/copy.safetensors")
        let copy = try SafeTensorsFile(path: dir + "/copy.safetensors")
        for t in original.tensors {
            let c = try #require(copy.tensor(named: t.name))
            #expect(c.shape == t.shape && c.dtype == t.dtype)
            #expect(Array(copy.rawBytes(c)) == Array(original.rawBytes(t)), "\(t.name)")
        }
    }
}
