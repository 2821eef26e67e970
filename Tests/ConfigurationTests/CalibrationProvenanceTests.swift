import Configuration
import Foundation
import Testing

/// `kv_cache.calibration` records where a plan's statistics came from (docs/config.md, "Calibration
/// provenance"): `source` bundle or capture, the `bundle` path, the `samples` count. Files without
/// them (the first v1 files) still load.
@Suite struct CalibrationProvenanceTests {
    static let sha = String(repeating: "0f", count: 32)

    /// The sample config with a calibration record of `reference`.
    static func config(_ reference: CalibrationReference) throws -> KVScopeConfig {
        var c = try sampleConfig()
        c.kvCache?.calibration = reference
        return c
    }

    static let bundle = CalibrationReference(text: "Samples/calibration.txt", sha256: sha, nTokens: 952, source: .bundle,
                                             bundle: "Samples/smollm2", samples: 64)
    static let capture = CalibrationReference(text: "Samples/calibration.txt", sha256: sha, nTokens: 952, source: .capture,
                                              samples: 256)

    @Test(arguments: ["c.json", "c.yaml"])
    func theRecordRoundTrips(name: String) throws {
        for reference in [Self.bundle, Self.capture] {
            let config = try Self.config(reference)
            let path = try temporaryDirectory() + "/" + name
            try config.write(to: path, force: false)
            let back = try KVScopeConfig.load(path: path)
            #expect(back.kvCache?.calibration == reference)
            #expect(back == config)
        }
        // In the file, as docs/config.md spells it (read by Foundation's JSON parser).
        #expect(try Self.calibrationObject(try Self.config(Self.bundle).encoded(.json)) as NSDictionary == [
            "text": "Samples/calibration.txt", "sha256": Self.sha, "n_tokens": 952, "source": "bundle",
            "bundle": "Samples/smollm2", "samples": 64,
        ] as NSDictionary)
    }

    static func calibrationObject(_ text: String) throws -> [String: Any] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        return try #require((doc["kv_cache"] as? [String: Any])?["calibration"] as? [String: Any])
    }

    /// A file written before the fields existed loads, with the source unrecorded, and is written back as it was.
    @Test func aFileWithoutTheNewFieldsStillLoads() throws {
        let legacy = try sampleConfig()
        let text = try legacy.encoded(.json)
        #expect(try Self.calibrationObject(text) as NSDictionary
                == ["text": "Samples/calibration.txt", "sha256": Self.sha, "n_tokens": 952] as NSDictionary)
        let back = try KVScopeConfig.decode(Array(text.utf8), format: .json, path: "old.json")
        let c = try #require(back.kvCache?.calibration)
        #expect(c.source == nil && c.bundle == nil && c.samples == nil)
        #expect(try back.encoded(.json) == text)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var reference: CalibrationReference
        var edit: (entry: String, value: ConfigValue?)?
        var message: String
        var testDescription: String { message }
    }

    static let cases: [Case] = [
        Case(reference: capture, edit: ("kv_cache.calibration.source", .string("cache")),
             message: "kv_cache.calibration.source: unknown source \"cache\" (expected bundle, capture)"),
        Case(reference: capture, edit: ("kv_cache.calibration.source", .int(1)),
             message: "kv_cache.calibration.source: expected a string, found an integer 1"),
        Case(reference: capture, edit: ("kv_cache.calibration.bundle", .string("Samples/smollm2")),
             message: "kv_cache.calibration.bundle: only goes with source \"bundle\" (the source is \"capture\")"),
        Case(reference: bundle, edit: ("kv_cache.calibration.bundle", nil),
             message: "kv_cache.calibration.bundle: missing (the source is \"bundle\")"),
        Case(reference: bundle, edit: ("kv_cache.calibration.bundle", .string("")), message: "kv_cache.calibration.bundle: is empty"),
        Case(reference: capture, edit: ("kv_cache.calibration.samples", .int(-1)), message: "kv_cache.calibration.samples: -1 is negative"),
        Case(reference: capture, edit: ("kv_cache.calibration.samples", .int(953)),
             message: "kv_cache.calibration.samples: 953 sampled rows of 952 tokens"),
        Case(reference: capture, edit: ("kv_cache.calibration.samples", .string("256")),
             message: "kv_cache.calibration.samples: expected an integer, found a string \"256\""),
        Case(reference: capture, edit: ("kv_cache.calibration.sampels", .int(3)),
             message: "kv_cache.calibration.sampels: unknown key (expected one of text, sha256, n_tokens, source, bundle, samples)"),
    ]

    @Test(arguments: cases)
    func aBadRecordNamesTheEntry(_ c: Case) throws {
        var tree = try Self.config(c.reference).document
        if let edit = c.edit { tree = edited(tree, pathComponents(edit.entry), edit.value) }
        try expectEveryFormatRejects(tree) { $0.entryDescription == c.message && !$0.description.contains("\n") }
    }

    /// One default for the CLI and the explorer: tune's settings start at KVDefaults.
    @Test func tuneSettingsStartAtTheSharedDefaults() {
        let t = KVTuneSettings()
        #expect(t.window == KVDefaults.window && t.groupSize == KVDefaults.groupSize && t.contextLength == KVDefaults.contextLength)
        #expect(t.bitsChoices == KVDefaults.bitsChoices && t.minRank == KVDefaults.minRank && t.rankStep == KVDefaults.rankStep)
        #expect(KVDefaults.window == 32 && KVDefaults.groupSize == 32 && KVDefaults.contextLength == 4096)
        #expect(KVDefaults.contextLength(modelContext: 8192) == 4096)
        #expect(KVDefaults.contextLength(modelContext: 2048) == 2048)
        #expect(KVDefaults.contextLength(modelContext: nil) == 4096)
    }
}
