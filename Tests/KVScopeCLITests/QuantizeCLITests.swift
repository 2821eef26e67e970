import Foundation
import Testing

/// `kvscope quantize` (DESIGN.md §5) against the numpy reference Tests/Reference/quant_model_golden.py
/// (golden Tests/Golden/quant/smollm2_quantize.json): all 210 SmolLM2 matrices at the defaults.
@Suite struct QuantizeCLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Test func smolLM2DefaultsMatchNumpy() throws {
        let doc = try SmolLM2CLITests.json(try CLI.run(["quantize", Self.model, "--json"]))
        let golden = try SmolLM2CLITests.golden("quant/smollm2_quantize.json")
        let want = try #require(golden["tensors"] as? [[String: Any]])
        let got = try #require(doc["tensors"] as? [[String: Any]])
        #expect(want.count == 210)
        #expect(got.count == 210)
        for (g, w) in zip(got, want) {
            let name = w["tensor"] as? String ?? "?"
            #expect(g["tensor"] as? String == name)
            #expect(g["role"] as? String == w["role"] as? String, "\(name)")
            #expect(g["layer"] as? Int == w["layer"] as? Int, "\(name)")
            #expect(g["bits"] as? Int == 4 && g["group"] as? Int == 128, "\(name)")
            #expect(g["bytes"] as? Int == w["bytes"] as? Int, "\(name)")
            let ge = try #require(g["rel_error"] as? Double), we = try #require(w["rel_error"] as? Double)
            #expect(abs(ge - we) <= 1e-5 * we, "\(name): \(ge) vs numpy \(we)")
        }
        #expect(doc["total_bytes"] as? Int == golden["total_bytes"] as? Int)
        let bpw = try #require(doc["bits_per_weight"] as? Double), wantBpw = try #require(golden["bits_per_weight"] as? Double)
        #expect(abs(bpw - wantBpw) <= 1e-12)
        let roles = try #require(doc["roles"] as? [[String: Any]]), wantRoles = try #require(golden["roles"] as? [[String: Any]])
        #expect(roles.map { $0["role"] as? String } == ["q", "k", "v", "o", "gate", "up", "down"])
        for (g, w) in zip(roles, wantRoles) {
            let ge = try #require(g["rel_error"] as? Double), we = try #require(w["rel_error"] as? Double)
            #expect(abs(ge - we) <= 1e-5 * we, "role \(w["role"] ?? "?")")
        }
    }

    @Test func optionsChangeTheBytes() throws {
        // 3 bits, group 64, symmetric, 1% outliers: bytes = n·3/8 + rows·⌈cols/64⌉·2 + 4·k + 4·(rows+1), k = ⌊0.01·n⌋.
        let doc = try SmolLM2CLITests.json(try CLI.run(["quantize", Self.model, "--bits", "3", "--group", "64",
                                                        "--sym", "--outliers", "0.01", "--json"]))
        let tensors = try #require(doc["tensors"] as? [[String: Any]])
        #expect(tensors.count == 210)
        let q0 = try #require(tensors.first)
        #expect(q0["tensor"] as? String == "blk.0.attn_q.weight")
        let (rows, cols) = (576, 576)
        let n = rows * cols
        let expected = Double(n * 3) / 8 + Double(rows * 9 * 2) + Double(4 * (n / 100) + 4 * (rows + 1))
        #expect((q0["bytes"] as? NSNumber)?.doubleValue == expected)
        let e = try #require(q0["rel_error"] as? Double)
        #expect(e > 0 && e < 0.5)
    }

    @Test(arguments: [["--bits", "9"], ["--bits", "1"], ["--group", "0"], ["--outliers", "0.5"], ["--outliers=-0.1"]])
    func badOptionsAreOneLineErrors(_ options: [String]) throws {
        let r = try CLI.run(["quantize", Self.model] + options)
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("kvscope: error: --") == true, "\(r.stderr)")
    }

    @Test func miniLMSafetensorsWorks() throws {
        let doc = try SmolLM2CLITests.json(try CLI.run(["quantize", "models/minilm/model.safetensors", "--json"]))
        let tensors = try #require(doc["tensors"] as? [[String: Any]])
        // BERT: q, k, v, o, up (intermediate), down (output) in each of 6 layers.
        #expect(tensors.count == 36)
        for t in tensors {
            let e = try #require(t["rel_error"] as? Double)
            #expect(e > 0 && e < 0.2, "\(t["tensor"] ?? "?")")
        }
        let first = try #require(tensors.first)
        let n = 384 * 384
        #expect(first["bytes"] as? Int == n / 2 + 384 * 3 * 4)
    }
}
