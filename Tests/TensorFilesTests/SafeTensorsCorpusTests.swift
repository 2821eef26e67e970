import Foundation
import Testing
@testable import TensorFiles

/// Every file of Tests/Corpus/safetensors (written by Tests/Reference/safetensors_corpus.py)
/// is rejected with a TensorFileError that names the file and says what is wrong and where.
@Suite struct SafeTensorsCorpusTests {
    static let cases: [(file: String, message: String, location: String)] = [
        ("empty", "truncated: header length needs 8 bytes", "offset 0"),
        ("truncated_length", "truncated: header length needs 8 bytes, 3 left", "offset 0"),
        ("header_beyond_file", "header length 1000 runs past the end of the file", "offset 0"),
        ("header_too_large", "header length 200000000 exceeds the 100000000-byte limit", "offset 0"),
        ("bad_json", "bad JSON: unexpected end of input", "offset 45"),
        ("not_an_object", "header does not start with '{'", "offset 8"),
        ("unknown_dtype", "unknown dtype \"F7\"", "tensor a"),
        ("data_out_of_bounds", "data_offsets [0, 16] run past the end of the data (8 bytes)", "tensor a"),
        ("overlapping_offsets", "data_offsets [4, 12] overlap the previous tensor, which ends at 8", "tensor b"),
        ("gap_between_tensors", "gap in the data: bytes 8..<12 belong to no tensor", "tensor b"),
        ("not_starting_at_zero", "gap in the data: bytes 0..<4 belong to no tensor", "tensor a"),
        ("trailing_bytes", "the tensors end at data offset 8 but the file has 12 data bytes", "offset"),
        ("shape_length_mismatch", "shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8", "tensor a"),
        ("dims_overflow", "shape [4294967296, 4294967296, 16] has too many elements", "tensor a"),
        ("huge_offsets", "run past the end of the data", "tensor a"),
        ("offset_beyond_int64", "data_offsets must be two non-negative integers", "tensor a"),
        ("negative_dim", "shape entries must be non-negative integers", "tensor a"),
        ("offsets_reversed", "end before they begin", "tensor a"),
        ("non_utf8_name", "string is not valid UTF-8", "offset 10"),
        ("duplicate_name", "duplicate key \"a\"", "offset"),
        ("metadata_not_strings", "__metadata__ value is not a string", "key format"),
        ("deep_nesting", "nested deeper than 64 levels", "offset"),
        ("missing_dtype", "missing or non-string dtype", "tensor a"),
    ]

    @Test(arguments: cases)
    func rejects(file: String, message: String, location: String) {
        let path = TestPaths.repo("Tests/Corpus/safetensors/\(file).safetensors")
        do {
            let f = try SafeTensorsFile(path: path)
            Issue.record("accepted \(file) with \(f.tensors.count) tensors")
        } catch let e as TensorFileError {
            #expect(e.path == path)
            #expect(e.message.contains(message), "\(file): \(e.message)")
            #expect(e.location.hasPrefix(location), "\(file): \(e.location)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("\(file): unexpected error \(error)")
        }
    }

    @Test func theTableCoversTheWholeCorpus() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: TestPaths.repo("Tests/Corpus/safetensors"))
            .filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }
        #expect(Set(names) == Set(Self.cases.map(\.file)))
    }

    @Test func openModelReportsCorpusErrorsToo() {
        let path = TestPaths.repo("Tests/Corpus/safetensors/overlapping_offsets.safetensors")
        #expect(throws: TensorFileError.self) { try openModel(path: path) }
    }
}
