import Foundation
import Testing
@testable import TensorFiles

/// Malformed GGUF files (Tests/Corpus/gguf, written by Tests/Reference/gguf_corpus.py): each one is
/// rejected with a TensorFileError that names the file, says what is wrong and where.
@Suite struct GGUFCorpusTests {
    /// File, words the message must contain, words the location must contain.
    static let cases: [(String, [String], String)] = [
        ("empty.gguf", ["not a GGUF file", "too short"], "offset 0"),
        ("truncated.gguf", ["truncated"], "offset"),
        ("truncated_data.gguf", ["data out of bounds", "needs 34 bytes"], "tensor 'b.weight'"),
        ("wrong_magic.gguf", ["not a GGUF file", "\"GGML\""], "offset 0"),
        ("version1.gguf", ["unsupported GGUF version 1"], "offset 4"),
        ("version4.gguf", ["unsupported GGUF version 4"], "offset 4"),
        ("big_endian.gguf", ["big-endian"], "offset 4"),
        ("key_length_beyond_file.gguf", ["length 4611686018427387904", "beyond the end of the file"], "offset 24"),
        ("string_length_beyond_file.gguf", ["length 10000", "beyond the end of the file", "general.name"], "offset"),
        ("tensor_count_2_60.gguf", ["tensor count 1152921504606846976 is impossible"], "offset 8"),
        ("kv_count_2_60.gguf", ["metadata count 1152921504606846976 is impossible"], "offset 16"),
        ("array_2_40.gguf", ["array of 1099511627776 string elements cannot fit"], "metadata key 'tokenizer.ggml.tokens'"),
        ("array_nested_too_deep.gguf", ["nested more than 8 deep"], "metadata key 'test.deep'"),
        ("unknown_value_type.gguf", ["unknown metadata value type 13"], "metadata key 'test.odd'"),
        ("bool_value_2.gguf", ["bool value is 2"], "metadata key 'test.flag'"),
        ("duplicate_key.gguf", ["duplicate metadata key"], "metadata key 'general.architecture'"),
        ("non_utf8_key.gguf", ["key of metadata entry 0 is not valid UTF-8"], "offset 32"),
        ("non_utf8_name.gguf", ["name of tensor 0 is not valid UTF-8"], "offset"),
        ("unknown_type.gguf", ["unknown ggml type 99"], "tensor 'a.weight'"),
        ("too_many_dims.gguf", ["5 dimensions", "at most 4"], "tensor 'a.weight'"),
        ("dims_overflow.gguf", ["overflow"], "tensor 'a.weight'"),
        ("alignment_48.gguf", ["general.alignment 48 is not a power of two"], "metadata key 'general.alignment'"),
        ("alignment_string.gguf", ["general.alignment must be an unsigned integer"], "metadata key 'general.alignment'"),
        ("partial_block.gguf", ["rows of 33 elements are not a whole number of Q4_0 blocks of 32"], "tensor 'a.weight'"),
        ("unaligned_offset.gguf", ["data offset 8 is not a multiple of the alignment 32"], "tensor 'a.weight'"),
        ("data_out_of_bounds.gguf", ["data out of bounds", "data offset 1048576"], "tensor 'a.weight'"),
        ("offset_beyond_any_file.gguf", ["beyond any file"], "tensor 'a.weight'"),
        ("overlapping.gguf", ["data of tensor 'a.weight'", "overlaps data of tensor 'b.weight'"], "tensor 'b.weight'"),
        ("shape_vs_data.gguf", ["shape [8, 64] of Q8_0 needs 544 bytes", "only 512 bytes"], "tensor 'a.weight'"),
    ]

    @Test(arguments: cases)
    func malformedFileIsRejectedWithAUsefulMessage(name: String, words: [String], location: String) {
        let path = GGUFTestPaths.corpus + "/" + name
        do {
            let file = try GGUFFile(path: path)
            Issue.record("\(name) was accepted: \(file.tensors.count) tensors")
        } catch let error as TensorFileError {
            #expect(error.path == path)
            for w in words { #expect(error.message.contains(w), "\(name): message \"\(error.message)\" lacks \"\(w)\"") }
            #expect(error.location.contains(location), "\(name): location \"\(error.location)\" lacks \"\(location)\"")
            #expect(error.description.hasPrefix(path + ": "))
        } catch {
            Issue.record("\(name): unexpected error \(error)")
        }
    }

    @Test func everyCorpusFileHasACase() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: GGUFTestPaths.corpus).filter { $0.hasSuffix(".gguf") }
        #expect(Set(files) == Set(Self.cases.map(\.0)))
    }

    @Test func everyPrefixOfAValidFileFailsCleanly() throws {
        // Cutting the fixture anywhere in its header must throw, never trap.
        let original = try Data(contentsOf: URL(fileURLWithPath: GGUFFixtureTests.fixturePath))
        let full = try GGUFFile(path: GGUFFixtureTests.fixturePath)
        let path = GGUFTestPaths.temporary("prefix.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for length in stride(from: 0, to: full.dataOffset + 64, by: 7) {
            try original.prefix(length).write(to: URL(fileURLWithPath: path))
            #expect(throws: TensorFileError.self, "prefix of \(length) bytes") { _ = try GGUFFile(path: path) }
        }
    }

    @Test func dequantizingAnUnsupportedTypeIsAnError() throws {
        var w = GGUFWriter()
        try w.addTensor(name: "iq", shape: [1, 256], type: .iq2_XXS, data: [UInt8](repeating: 0, count: 66))
        let path = GGUFTestPaths.temporary("iq.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.tensors.first?.dtype == "IQ2_XXS")
        #expect(throws: TensorFileError(path: path, "cannot convert ggml type IQ2_XXS to Float", at: "tensor 'iq'")) {
            _ = try file.floats(named: "iq")
        }
    }
}
