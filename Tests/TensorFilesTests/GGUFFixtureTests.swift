import Foundation
import Testing
import LinearAlgebra
@testable import TensorFiles

/// The every-type fixture written by gguf-py (Tests/Reference/gguf_golden.py), and kvscope's own writer.
@Suite struct GGUFFixtureTests {
    static let fixturePath = GGUFTestPaths.golden + "/fixture_types.gguf"

    /// The metadata gguf_golden.py writes, with the types it asks for.
    static let expectedMetadata: [GGUFMetadataEntry] = [
        .init(key: "general.architecture", value: .string("fixture")),
        .init(key: "test.uint8", value: .uint8(200)),
        .init(key: "test.int8", value: .int8(-100)),
        .init(key: "test.uint16", value: .uint16(60000)),
        .init(key: "test.int16", value: .int16(-30000)),
        .init(key: "test.uint32", value: .uint32(4_000_000_000)),
        .init(key: "test.int32", value: .int32(-2_000_000_000)),
        .init(key: "test.uint64", value: .uint64(18_000_000_000_000_000_000)),
        .init(key: "test.int64", value: .int64(-9_000_000_000_000_000_000)),
        .init(key: "test.float32", value: .float32(0.1)),
        .init(key: "test.float64", value: .float64(0.1)),
        .init(key: "test.bool", value: .bool(true)),
        .init(key: "test.string", value: .string("héllo, wörld ✓")),
        .init(key: "test.array_int32", value: .array(.int32, [.int32(1), .int32(-2), .int32(3)])),
        .init(key: "test.array_float32", value: .array(.float32, [.float32(0.5), .float32(-1.25)])),
        .init(key: "test.array_string", value: .array(.string, [.string("a"), .string(""), .string("ü")])),
        .init(key: "test.array_bool", value: .array(.bool, [.bool(true), .bool(false)])),
        .init(key: "test.nested", value: .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])])),
    ]

    @Test func metadataOfEveryTypeReadsExactly() throws {
        let file = try GGUFFile(path: Self.fixturePath)
        #expect(file.metadataEntries == Self.expectedMetadata)
        #expect(file["test.uint64"] == .uint(18_000_000_000_000_000_000))
        #expect(file["test.float32"]?.doubleValue == Double(Float(0.1)))
        #expect(file["test.nested"] == .array([.array([.int(1), .int(2)]), .array([.int(3)])]))
        // The golden JSON lists the same keys and types.
        let golden = try #require(try GGUFTestPaths.goldenJSON("fixture_types.json")["metadata"] as? [String: [String: Any]])
        for e in Self.expectedMetadata.dropFirst() {
            #expect(golden[e.key]?["type"] as? String == e.value.type.description, "type of \(e.key)")
        }
    }

    @Test func everyTypeDequantizesBitIdenticallyToGGUFPy() throws {
        let file = try GGUFFile(path: Self.fixturePath)
        let tensors = try #require(try GGUFTestPaths.goldenJSON("fixture_types.json")["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name) == tensors.compactMap { $0["name"] as? String })
        var types = Set<String>()
        for g in tensors {
            let name = try #require(g["name"] as? String)
            let info = try #require(file.tensor(named: name))
            #expect(info.dtype == g["type"] as? String, "dtype of \(name)")
            #expect(info.shape == g["shape"] as? [Int], "shape of \(name)")
            let values = try file.floats(info)
            let first = try #require(g["first_bits"] as? [Int])
            #expect(firstBits(values, first.count) == first, "first values of \(name)")
            #expect(SHA256.hex(floats: values) == g["sha256"] as? String, "sha256 of \(name)")
            #expect(weightedChecksum(values) == g["weighted_sum"] as? String, "checksum of \(name)")
            types.insert(info.dtype)
        }
        let required: Set<String> = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
        #expect(types == required)
    }

    @Test(arguments: ["BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
    func quantizerWritesTheSameBytesAsGGUFPy(typeName: String) throws {
        let file = try GGUFFile(path: Self.fixturePath)
        let type = try #require(GGMLType(name: typeName))
        let source = try file.floats(named: "source")
        let written = try #require(file.tensor(named: typeName))
        let bytes = try #require(GGMLQuantizer.quantize(source, as: type))
        #expect(bytes == Array(file.rawBytes(written)))
    }

    /// Relative Frobenius error of encode → decode on Gaussian data, with a bound per type.
    @Test(arguments: [
        (GGMLType.q2_K, 0.45), (.q3_K, 0.25), (.q4_K, 0.12), (.q5_K, 0.06), (.q6_K, 0.03),
        (.q4_0, 0.15), (.q4_1, 0.12), (.q5_0, 0.07), (.q5_1, 0.06), (.q8_0, 0.01), (.f16, 1e-3), (.bf16, 5e-3), (.f32, 0),
    ])
    func encodeDecodeRoundTrip(type: GGMLType, bound: Double) throws {
        var rng = SeededGenerator(seed: 7)
        let n = 4 * 512
        var x = (0..<n).map { _ in rng.nextGaussian() * 0.02 }
        x[0..<64] = ArraySlice(repeating: 0, count: 64)   // an all-zero sub-block decodes to zeros
        let bytes = try #require(GGMLQuantizer.quantize(x, as: type))
        #expect(bytes.count == n / type.blockSize * type.typeSize)
        let y = try #require(bytes.withUnsafeBytes { GGMLDequantizer.dequantize(type, $0) })
        #expect(y[0..<64].allSatisfy { $0 == 0 })
        var err = 0.0, norm = 0.0
        for i in 0..<n {
            err += Double(x[i] - y[i]) * Double(x[i] - y[i])
            norm += Double(x[i]) * Double(x[i])
        }
        let relative = (err / norm).squareRoot()
        #expect(relative <= bound, "\(type): relative error \(relative)")
        // A decode of the wrong layout would be far worse than the type's noise; check it is not trivially 0.
        if type.isQuantized { #expect(relative > 0) }
    }

    @Test func writerReproducesGGUFPysFileByteForByte() throws {
        let file = try GGUFFile(path: Self.fixturePath)
        var w = GGUFWriter()
        for e in file.metadataEntries { w.addMetadata(e.key, e.value) }
        for t in file.ggufTensors {
            try w.addTensor(name: t.name, shape: t.info.shape, type: t.type, data: Array(file.rawBytes(t.info)))
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: Self.fixturePath))
        #expect(w.serialized() == [UInt8](original))
        let out = GGUFTestPaths.temporary("copy.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try w.write(to: out)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == original)
    }

    @Test func writerRoundTripsFloatsZerosAndAlignment() throws {
        var w = GGUFWriter(version: 2, alignment: 64)
        for e in Self.expectedMetadata { w.addMetadata(e.key, e.value) }
        let values = (0..<(3 * 64)).map { Float($0) * 0.25 - 7 }
        try w.addTensor(name: "f32", shape: [3, 64], floats: values, as: .f32)
        try w.addTensor(name: "f16", shape: [3, 64], floats: values, as: .f16)
        try w.addTensor(name: "q8", shape: [3, 64], floats: values, as: .q8_0)
        try w.addZeroTensor(name: "zeros", shape: [2, 256], type: .q4_K)
        try w.addTensor(name: "vector", shape: [5], floats: [1, 2, 3, 4, 5], as: .f32)
        #expect(throws: TensorFileError.self) { try w.addTensor(name: "f32", shape: [1], floats: [0], as: .f32) }
        #expect(throws: TensorFileError.self) { try w.addTensor(name: "bad", shape: [3, 33], type: .q8_0, data: []) }

        let path = GGUFTestPaths.temporary("round.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.version == 2)
        #expect(file.alignment == 64)
        #expect(file.dataOffset % 64 == 0)
        #expect(file.typedMetadata("general.alignment") == .uint32(64))
        #expect(Array(file.metadataEntries.dropFirst()) == Self.expectedMetadata)
        #expect(file.tensors.map(\.name) == ["f32", "f16", "q8", "zeros", "vector"])
        #expect(file.tensors.allSatisfy { ($0.byteOffset - file.dataOffset) % 64 == 0 })
        #expect(try file.floats(named: "f32") == values)
        #expect(try file.floats(named: "f16") == values)   // quarter steps below 2048 are exact in fp16
        let q8 = try file.floats(named: "q8")
        #expect(zip(q8, values).allSatisfy { abs($0 - $1) <= 0.2 })   // half a step of max|x|/127 per block
        #expect(try file.floats(named: "zeros") == [Float](repeating: 0, count: 512))
        #expect(file.tensor(named: "zeros")?.dtype == "Q4_K")
        #expect(try file.floats(named: "vector") == [1, 2, 3, 4, 5])
    }

    @Test func zeroTensorsAreWrittenSparsely() throws {
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string("llama"))
        // 16384 × 8192 F16 = 256 MiB of zeros.
        try w.addZeroTensor(name: "token_embd.weight", shape: [16384, 8192], type: .f16)
        try w.addTensor(name: "output_norm.weight", shape: [4], floats: [1, 1, 1, 1], as: .f32)
        let path = GGUFTestPaths.temporary("sparse.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        var st = stat()
        #expect(stat(path, &st) == 0)
        let logical = Int(st.st_size), physical = Int(st.st_blocks) * 512
        #expect(logical > 256 << 20)
        #expect(physical < 1 << 20, "sparse file uses \(physical) bytes on disk")
        let file = try GGUFFile(path: path)
        let embd = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embd.byteCount == 16384 * 8192 * 2)
        #expect(try file.floats(named: "output_norm.weight") == [1, 1, 1, 1])
    }

    @Test func typesKnowTheirBlockLayout() {
        #expect(GGMLType.q4_K.blockSize == 256 && GGMLType.q4_K.typeSize == 144)
        #expect(GGMLType.q8_0.rowByteCount(elements: 64) == 68)
        #expect(GGMLType.q8_0.rowByteCount(elements: 65) == nil)
        #expect(GGMLType(rawValue: 4) == nil)   // retired Q4_2
        #expect(GGMLType(name: "IQ2_XXS") == .iq2_XXS)
        #expect(!GGMLType.iq2_XXS.canDequantize)
    }
}
