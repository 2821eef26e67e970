import ExplorerCore
import Foundation
import Testing

/// The explorer reads the configs `kvscope tune` writes (DESIGN.md §6: either section may be absent).
@Suite struct TUIConfigFileTests {
    @Test func aKVOnlyConfigWithExtraKeysOpens() throws {
        let state = try TUIFixture.state()
        var layers: [String] = []
        for l in 0..<30 {
            layers.append(#"{"layer": \#(l), "k": {"rank": \#(64 + l), "bits": 8}, "v": {"rank": 128, "bits": 4}}"#)
        }
        let json = """
            {"format": "kvscope-config", "version": 1,
             "model": {"path": "m.gguf", "architecture": "llama", "n_layers": 30, "hidden_size": 576, "d_kv": 192, "sha256": "00"},
             "kv_cache": {"basis": "activations", "window": 16, "group_size": 32, "context_length": 4096,
                          "calibration": {"text": "Samples/calibration.txt", "sha256": "ab", "n_tokens": 952},
                          "layers": [\(layers.joined(separator: ","))],
                          "memory": {"baseline_bytes": 1, "compressed_bytes": 1, "ratio": 0, "nominal_ratio": 0}},
             "metrics": {"kv_weighted_error": 1.5}}
            """
        let s = try MinimalConfigFile().decode(Data(json.utf8), path: "cfg.json", state: state)
        #expect(s.window == 16)
        #expect(s.groupSize == 32)
        #expect(s.contextLength == 4096)
        #expect(s.layers[3].k.rank == 67 && s.layers[3].k.bits == 8)
        #expect(s.layers[29].v.rank == 128 && s.layers[29].v.bits == 4)
        #expect(s.weights == state.settings.weights)
    }

    @Test func aConfigWithNeitherSectionIsAnError() throws {
        let state = try TUIFixture.state()
        let json = #"{"format": "kvscope-config", "version": 1, "model": {"path": "m", "architecture": "llama", "n_layers": 30, "hidden_size": 576, "d_kv": 192}}"#
        #expect(throws: ConfigFileError.self) { try MinimalConfigFile().decode(Data(json.utf8), path: "cfg.json", state: state) }
    }
}
