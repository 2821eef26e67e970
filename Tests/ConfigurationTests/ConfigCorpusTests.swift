import Foundation
import Testing
@testable import Configuration

/// The config corpus (Tests/Corpus/config, written by Tests/Reference/config_corpus.py, also the
/// FuzzConfig seeds) and the fuzzer's finds (Tests/Corpus/regressions/config): every hostile file is
/// a ``ConfigError`` naming what is wrong, found without looping over or allocating for the sizes it
/// declares; the valid seeds (one with a 100 000-character model path) read.
@Suite struct ConfigCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let corpus = root.appendingPathComponent("Tests/Corpus/config").path
    static let regressions = root.appendingPathComponent("Tests/Corpus/regressions/config").path

    /// File and words its error must contain.
    static let cases: [(String, String)] = [
        ("n_layers_2_62.json", "missing layers 2, 3, 4, 5, 6, 7, 8, 9, … (4611686018427387902 of 4611686018427387904)"),
        ("n_layers_int_max.yaml", "(9223372036854775805 of 9223372036854775807)"),
        ("d_kv_2_62_rank_2_62.json", "kv_cache.memory"),
        ("group_size_int_max.json", "kv_cache.memory"),
        ("context_int_max.json", "kv_cache.memory"),
        ("window_int_max.json", "kv_cache.memory"),
        ("layer_index_int_max.json", "9223372036854775807 is outside 0…1"),
        ("int_beyond_int64.json", "model.n_layers"),
        ("int_beyond_int64.yaml", "out of range"),
        ("number_1e400.json", "1e400"),
        ("yaml_inf_metric.yaml", ".inf is not a finite number"),
        ("yaml_nan_memory.yaml", ".nan is not a finite number"),
        ("deep_nesting.json", "nested deeper"),
        ("deep_nesting.yaml", "nested deeper than 64 levels"),
        ("yaml_alias_bomb.yaml", "YAML anchors are not supported in configs (line 1, column 4)"),
        // FuzzConfig (timeout): the bomb inside a flow sequence used as a mapping key, which Yams'
        // duplicate-key check hashed for ever; now refused before Yams parses.
        ("yaml_alias_key_bomb.yaml", "YAML anchors are not supported in configs"),
                ("duplicate_key.json", "duplicate key"),
        ("not_utf8.json", "UTF-8"),
        ("not_utf8.yaml", "UTF-8"),
        ("truncated.json", "unexpected end of input"),
        ("truncated.yaml", "bad YAML"),
        ("empty.json", "unexpected end of input"),
        ("empty.yaml", "empty YAML document"),
        ("bad_escape.json", "unpaired surrogate"),
    ]

    static func read(_ path: String) throws -> KVScopeConfig {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return try KVScopeConfig.decode(bytes, format: ConfigFormat(path: path), path: path)
    }

    @Test(arguments: cases)
    func hostileConfigIsANamedError(name: String, words: String) throws {
        let path = Self.corpus + "/" + name
        do {
            _ = try Self.read(path)
            Issue.record("\(name) was accepted")
        } catch let error as ConfigError {
            #expect(error.path == path)
            #expect(error.description.contains(words), "\(name): \(error)")
        }
    }

    @Test(arguments: ["valid.json", "valid.yaml", "long_string.json"])
    func validSeedReadsAndRoundTrips(name: String) throws {
        let config = try Self.read(Self.corpus + "/" + name)
        #expect(config.model.nLayers == 2)
        #expect(config.kvCache?.layers.count == 2)
        for format in ConfigFormat.allCases {
            let again = try KVScopeConfig.decode(Array(try config.encoded(format).utf8), format: format)
            #expect(again == config)
        }
    }

    /// Anchors and aliases are found where YAML has them, and not in quoted or plain text.
    @Test func anchorsAndAliasesAreFoundOnlyAsNodes() {
        let found: [(String, Int, Int)] = [("a: &x 1\n", 1, 4), ("b: [1, *y]\n", 1, 8), ("- &z\n", 1, 3), ("k:\n  - *w\n", 2, 5)]
        for (text, line, column) in found {
            let hit = ConfigValue.firstAnchorOrAlias(in: text)
            #expect(hit?.line == line && hit?.column == column, "\(text)")
        }
        let clean = ["a: 'it''s &x *y'\n", "b: \"*z &w \\\" *v\"\n", "c: x &y *z # &c\n", "d: 2*3\n", "e: [a &b, c*d]\n", "# *x\n"]
        for text in clean { #expect(ConfigValue.firstAnchorOrAlias(in: text) == nil, "\(text)") }
    }

    @Test func everyCorpusFileHasACase() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus)
        #expect(Set(files) == Set(Self.cases.map(\.0) + ["valid.json", "valid.yaml", "long_string.json"]))
    }

    /// The fuzzer's finds: each one reads as an error or a config that survives its own writer.
    @Test func fuzzerFindsNeitherTrapNorHang() throws {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: Self.regressions)) ?? []
        for name in files.sorted() {
            for format in ConfigFormat.allCases {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.regressions + "/" + name)))
                guard let config = try? KVScopeConfig.decode(bytes, format: format) else { continue }
                for out in ConfigFormat.allCases {
                    #expect(try KVScopeConfig.decode(Array(config.encoded(out).utf8), format: out) == config, "\(name)")
                }
            }
        }
    }
}
