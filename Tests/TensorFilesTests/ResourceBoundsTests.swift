import Foundation
import Testing
@testable import TensorFiles

/// Hostile sizes (RELIABILITY.md): a count, length or dimension read from a file is checked against
/// the bytes that could hold it before anything is allocated or multiplied, and every malformed
/// file ends in a ``TensorFileError``, never a trap.
@Suite struct ResourceBoundsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func corpus(_ dir: String) -> String { root.appendingPathComponent("Tests/Corpus/\(dir)").path }

    static func files(_ dir: String) -> [String] {
        let path = corpus(dir)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
    }

    /// Opens a file by its extension the way `kvscope inspect` does, through the model catalog.
    static func open(_ path: String) throws {
        switch URL(fileURLWithPath: path).pathExtension {
        case "npy": _ = try NpyFile(path: path)
        default:
            let (file, _, metadata) = try ModelFiles.openTensorFile(path: path)
            _ = try ModelCatalog(tensors: file.tensors, metadata: metadata, path: path)
        }
    }

    // MARK: - Every malformed file, including the fuzzers' finds, is a typed error

    static let malformed = ["gguf", "safetensors", "npy", "catalog"].flatMap(files)
        + ["gguf", "safetensors", "npy"].flatMap { files("regressions/\($0)") }

    @Test(arguments: malformed)
    func malformedFileThrowsATypedError(path: String) {
        #expect(throws: TensorFileError.self, "\(path)") { try Self.open(path) }
    }

    /// The fuzzers' finds, replayed through the same calls as the fuzz targets (parse, then
    /// dequantize every small tensor, then the catalog): each must end in a value or a typed error.
    static let ggufRegressions = files("regressions/gguf")

    @Test(arguments: ggufRegressions)
    func ggufRegressionReplaysTheFuzzTarget(path: String) throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let file = data.withUnsafeBytes { MappedFile(copying: $0, path: path) }
        guard let gguf = try? GGUFFile(mapping: file) else { return }
        for t in gguf.tensors where t.byteCount <= 1 << 20 {
            if let values = try? gguf.floats(t) { #expect(values.count == t.elementCount) }
        }
        _ = try? ModelCatalog(tensors: gguf.tensors, metadata: gguf.compactMetadata(), path: path)
    }

    /// `fuzz_zero_dim_then_overflow.gguf` (FuzzGGUF): ggml dims [0, 2.5e14, 2.2e17] passed the reader's
    /// product check (0 first), but the shape's product in PyTorch order multiplied the two huge
    /// dimensions first and trapped on overflow in `floats`.
    @Test func aZeroDimensionMakesAnEmptyTensorInAnyOrder() {
        let info = TensorInfo(name: "t", shape: [1 << 40, 1 << 40, 0], dtype: "F32", byteOffset: 0, byteCount: 0)
        #expect(info.elementCount == 0)
        #expect(CheckedSize.product([1 << 40, 1 << 40, 0]) == 0)
        #expect(CheckedSize.product([1 << 40, 1 << 40]) == nil)
    }

    @Test func theCorpusIsThere() {
        #expect(Self.files("regressions/gguf").count >= 1)
        #expect(Self.files("gguf").count >= 29)
        #expect(Self.files("catalog").count == 5)
    }

    // MARK: - Hyper-parameters that would overflow or reserve memory for 2^62 layers

    static let catalogCases: [(String, String)] = [
        ("block_count_2_62.gguf", "llama.block_count 4611686018427387904 is implausibly large"),
        ("block_count_2_61.gguf", "llama.block_count 2305843009213693952 is implausibly large"),
        ("embedding_2_62.gguf", "llama.embedding_length 4611686018427387904 is implausibly large"),
        ("heads_times_dim_overflow.gguf", "llama.attention.head_count 1099511627776 is implausibly large"),
        ("kv_heads_2_62.gguf", "llama.attention.head_count 4611686018427387904 is implausibly large"),
    ]

    @Test(arguments: catalogCases)
    func hostileHyperparametersAreRejected(name: String, message: String) throws {
        let path = Self.corpus("catalog") + "/" + name
        let gguf = try GGUFFile(path: path)  // the file itself is well-formed
        do {
            _ = try ModelCatalog(tensors: gguf.tensors, metadata: gguf.compactMetadata(), path: path)
            Issue.record("\(name) was accepted")
        } catch let error as TensorFileError {
            #expect(error.message.contains(message), "\(error)")
        }
    }

    // MARK: - Counts and lengths at 2^62, 2^63 and 2^64 − 1

    static func gguf(tensorCount: UInt64, kvCount: UInt64, body: [UInt8] = []) -> [UInt8] {
        var b = Array("GGUF".utf8) + le(UInt32(3))
        b += le(tensorCount) + le(kvCount) + body
        return b + [UInt8](repeating: 0, count: 64)
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    static func parseGGUF(_ bytes: [UInt8]) throws -> GGUFFile {
        try bytes.withUnsafeBytes { try GGUFFile(mapping: MappedFile(copying: $0, path: "hostile.gguf")) }
    }

    static let hugeCounts: [UInt64] = [1 << 62, 1 << 63, UInt64.max]

    @Test(arguments: hugeCounts)
    func ggufCountsBeyondTheFileAreImpossible(count: UInt64) {
        #expect { _ = try Self.parseGGUF(Self.gguf(tensorCount: count, kvCount: 0)) } throws: { error in
            (error as? TensorFileError)?.message.contains("tensor count \(count) is impossible") == true
        }
        #expect { _ = try Self.parseGGUF(Self.gguf(tensorCount: 0, kvCount: count)) } throws: { error in
            (error as? TensorFileError)?.message.contains("metadata count \(count) is impossible") == true
        }
    }

    @Test(arguments: hugeCounts)
    func ggufStringAndArrayLengthsBeyondTheFileAreErrors(length: UInt64) {
        // A key of `length` bytes.
        #expect(throws: TensorFileError.self) { _ = try Self.parseGGUF(Self.gguf(tensorCount: 0, kvCount: 1, body: Self.le(length))) }
        // A string value of `length` bytes.
        let key = Array("general.name".utf8)
        let str = Self.le(UInt64(key.count)) + key + Self.le(UInt32(8)) + Self.le(length)
        #expect(throws: TensorFileError.self) { _ = try Self.parseGGUF(Self.gguf(tensorCount: 0, kvCount: 1, body: str)) }
        // An array of `length` u8 and of `length` strings.
        for elementType in [UInt32(0), 8] {
            let arr = Self.le(UInt64(key.count)) + key + Self.le(UInt32(9)) + Self.le(elementType) + Self.le(length)
            #expect(throws: TensorFileError.self) { _ = try Self.parseGGUF(Self.gguf(tensorCount: 0, kvCount: 1, body: arr)) }
        }
        // A tensor whose name length is `length`, and one whose dimensions multiply past 2^64.
        #expect(throws: TensorFileError.self) { _ = try Self.parseGGUF(Self.gguf(tensorCount: 1, kvCount: 0, body: Self.le(length))) }
        let name = Array("a".utf8)
        let dims = Self.le(UInt64(1)) + name + Self.le(UInt32(3)) + Self.le(length) + Self.le(length) + Self.le(length)
            + Self.le(UInt32(0)) + Self.le(UInt64(0))
        #expect(throws: TensorFileError.self) { _ = try Self.parseGGUF(Self.gguf(tensorCount: 1, kvCount: 0, body: dims)) }
    }

    @Test(arguments: hugeCounts)
    func safetensorsHeaderLengthBeyondTheFileIsAnError(length: UInt64) {
        let bytes = Self.le(length) + Array(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8) + [0, 0, 0, 0]
        #expect(throws: TensorFileError.self) {
            _ = try bytes.withUnsafeBytes { try SafeTensorsFile(file: MappedFile(copying: $0, path: "hostile.safetensors")) }
        }
    }

    @Test(arguments: ["(4611686018427387904, 4)", "(4294967296, 4294967296, 16)", "(9223372036854775807,)",
                      "(99999999999999999999999,)", "(-1, 4)"])
    func npyShapesThatOverflowOrExceedTheDataAreErrors(shape: String) {
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0] + Self.le(UInt16(header.count)) + header + [UInt8](repeating: 0, count: 16)
        #expect(throws: TensorFileError.self, "\(shape)") {
            _ = try bytes.withUnsafeBytes { try NpyFile(file: MappedFile(copying: $0, path: "hostile.npy")) }
        }
    }
}
