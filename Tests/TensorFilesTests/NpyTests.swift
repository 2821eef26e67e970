import Foundation
import Testing
@testable import TensorFiles

/// The npy reader against numpy-written fixtures (Tests/Reference/npy_golden.py), the writer
/// against numpy's exact bytes, and the malformed corpus (Tests/Reference/safetensors_corpus.py).
@Suite struct NpyTests {
    static let fixtures = ["v1_f2", "v1_f4", "v1_f8", "v2_f2", "v2_f4", "v2_f8", "v3_f2", "v3_f4", "v3_f8",
                           "scalar_f4", "empty_f8"]

    static func facts(_ name: String) throws -> (version: Int, descr: String, shape: [Int], values: [Double]) {
        let all = try TestPaths.json("Tests/Golden/npy/values.json") as? [String: Any]
        let d = try #require(all?["\(name).npy"] as? [String: Any])
        let hex = try #require(d["values_f64_hex"] as? [String])
        return (try #require(d["version"] as? Int), try #require(d["descr"] as? String), try #require(d["shape"] as? [Int]),
                hex.map { Double(bitPattern: UInt64($0, radix: 16) ?? 0) })
    }

    @Test(arguments: fixtures)
    func readsNumpyFilesExactly(name: String) throws {
        let golden = try Self.facts(name)
        let file = try NpyFile(path: TestPaths.repo("Tests/Golden/npy/\(name).npy"))
        #expect(file.version.major == golden.version)
        #expect(file.dtype.rawValue == golden.descr)
        #expect(file.shape == golden.shape)
        #expect(file.tensors.first?.name == name)
        #expect(file.doubles().map(\.bitPattern) == golden.values.map(\.bitPattern))
        #expect(file.floats().map(\.bitPattern) == golden.values.map { Float($0).bitPattern })
    }

    @Test(arguments: fixtures)
    func writesTheSameBytesAsNumpy(name: String) throws {
        let golden = try Self.facts(name)
        let dtype = try #require(NpyDType(rawValue: golden.descr))
        let ours = try NpyFile.serialized(golden.values, shape: golden.shape, dtype: dtype, version: golden.version)
        let numpy = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.repo("Tests/Golden/npy/\(name).npy"))))
        #expect(ours == numpy)
    }

    @Test func writerRoundTripsAndPicksVersionTwoForHugeHeaders() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let values: [Float] = [1, -2, 0.5, 3e-3, 7, 8]
        try NpyFile.write(values, shape: [2, 3], to: dir + "/a.npy")
        let a = try NpyFile(path: dir + "/a.npy")
        #expect(a.floats() == values && a.shape == [2, 3] && a.dtype == .float32 && a.version.major == 1)
        #expect(throws: TensorFileError.self) { try NpyFile.write(values, shape: [4], to: dir + "/b.npy") }
        #expect(throws: TensorFileError.self) { try NpyFile.write(values, shape: [6], to: dir + "/a.npy", overwrite: false) }
        // 25,000 dims of one need a header above 65,535 bytes: version 2.
        let shape = [Int](repeating: 1, count: 25_000)
        let big = try NpyFile.serialized([42], shape: shape, dtype: .float64)
        let version = big[6]
        #expect(version == 2)
        let refused = (try? NpyFile.serialized([42], shape: shape, dtype: .float64, version: 1)) == nil
        #expect(refused, "version 1 cannot hold the header")
    }

    static let corpus: [(file: String, message: String)] = [
        ("empty", "truncated: npy magic and version needs 8 bytes, 0 left"),
        ("truncated_magic", "truncated: npy magic and version needs 8 bytes, 4 left"),
        ("bad_magic", "not an npy file (bad magic"),
        ("bad_version", "unsupported npy format version 4.0"),
        ("bad_minor_version", "unsupported npy format version 1.1"),
        ("header_beyond_file", "header length 4000 runs past the end of the file"),
        ("bad_header_dict", "bad npy header: fortran_order must be True or False"),
        ("missing_shape", "bad npy header: missing key"),
        ("fortran_order", "fortran_order arrays are not supported"),
        ("unsupported_dtype", "unsupported dtype '<i4'"),
        ("big_endian", "unsupported dtype '>f4'"),
        ("truncated_data", "truncated data: shape [4] of <f4 needs 16 bytes, the file has 8"),
        ("trailing_bytes", "4 bytes after the data of shape [1]"),
        ("shape_overflow", "has too many elements"),
        ("non_utf8_v3_header", "header is not valid UTF-8"),
    ]

    @Test(arguments: corpus)
    func rejectsMalformedFiles(file: String, message: String) {
        let path = TestPaths.repo("Tests/Corpus/npy/\(file).npy")
        do {
            let f = try NpyFile(path: path)
            Issue.record("accepted \(file) with shape \(f.shape)")
        } catch let e as TensorFileError {
            #expect(e.path == path)
            #expect(e.message.contains(message), "\(file): \(e.message)")
            #expect(!e.location.isEmpty, "\(file): no location")
        } catch {
            Issue.record("\(file): unexpected error \(error)")
        }
    }

    @Test func theTableCoversTheWholeCorpus() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: TestPaths.repo("Tests/Corpus/npy"))
            .filter { $0.hasSuffix(".npy") }.map { String($0.dropLast(4)) }
        #expect(Set(names) == Set(Self.corpus.map(\.file)))
    }

    @Test func openModelReadsNpyAsOneTensor() throws {
        let m = try openModel(path: TestPaths.repo("Tests/Golden/npy/v2_f4.npy"))
        #expect(m.format == .npy)
        #expect(m.catalog.family == .unknown)
        #expect(m.catalog.entries.map(\.shape) == [[3, 5]])
        #expect(m.catalog.entries.first?.dtype == "F32")
    }
}
