import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles
import Testing

/// SHA-256 against FIPS 180-4 example vectors (the same digests `hashlib.sha256` gives).
@Suite struct InferenceSHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func knownDigests(_ input: String, _ digest: String) {
        #expect(SHA256.hex(Array(input.utf8)) == digest)
    }

    @Test func streamingEqualsOneShot() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var h = SHA256()
        for chunk in stride(from: 0, to: bytes.count, by: 37) { h.update(Array(bytes[chunk..<min(chunk + 37, bytes.count)])) }
        #expect(h.finalizeHex() == SHA256.hex(bytes))
        // 1,000 bytes of this pattern, digest from Python's hashlib.
        #expect(SHA256.hex(Array(repeating: 0x61, count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

/// Calibration capture on the tiny random llama, the statistics file, and compressed policies built
/// from captured statistics.
@Suite struct CalibrationCaptureTests {
    let golden: TinyGolden
    let model: TransformerModel

    init() throws {
        golden = try TinyGolden.load()
        model = try TransformerModel(weights: loadRawModel(TinyGolden.directory, style: .adjacentPairs))
    }

    func capture(samples: Int = 5, sequences: [[Int32]]? = nil) throws -> (CalibrationStatistics, CalibrationFile.Provenance) {
        try CalibrationCapture.run(model: model, sequences: sequences ?? [golden.tokens],
                                   textSHA256: String(repeating: "ab", count: 32), textName: "tiny",
                                   sampleCount: samples, inputMoments: true)
    }

    func temporaryFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-calib-\(UUID().uuidString)-\(name)").path
    }

    @Test func gramsAreSumsOfCapturedRows() throws {
        var keys: [Matrix] = [], rotated: [Matrix] = []
        _ = try model.hiddenStates(tokens: golden.tokens, observer: { keys.append($0.keys); rotated.append($0.rotatedKeys) })
        let (stats, _) = try capture()
        #expect(stats.tokenCount == golden.tokens.count)
        for layer in 0..<2 {
            let direct = try matmul(keys[layer], .transpose, keys[layer], .none)
            #expect(stats.layers[layer].keyGram.relativeFrobeniusDistance(to: direct) < 1e-5)
            let directRotated = try matmul(rotated[layer], .transpose, rotated[layer], .none)
            let post = try #require(stats.layers[layer].keyGramPostRoPE)
            #expect(post.relativeFrobeniusDistance(to: directRotated) < 1e-5)
            #expect(stats.layers[layer].inputs[.attentionOutput] != nil && stats.layers[layer].inputs[.ffnInput] != nil)
        }
    }

    @Test func fileRoundTripFullAndCompact() throws {
        let (stats, provenance) = try capture()
        let full = temporaryFile("full.safetensors"), compact = temporaryFile("compact.safetensors")
        defer { try? FileManager.default.removeItem(atPath: full); try? FileManager.default.removeItem(atPath: compact) }
        try CalibrationFile.write(stats, to: full, provenance: provenance)
        let back = try CalibrationFile.read(path: full)
        #expect(back.statistics == stats)
        #expect(back.provenance == provenance)
        // Refuses to overwrite unless asked.
        #expect(throws: TensorFileError.self) { try CalibrationFile.write(stats, to: full, provenance: provenance) }

        try CalibrationFile.write(stats, to: compact, provenance: provenance, encoding: .compact)
        let packed = try CalibrationFile.read(path: compact).statistics
        #expect(packed.tokenCount == stats.tokenCount && packed.sampleTokenIndices == stats.sampleTokenIndices)
        for (a, b) in zip(packed.layers, stats.layers) {
            #expect(a.keyGram.relativeFrobeniusDistance(to: b.keyGram) < 1e-3)
            #expect(a.valueGram.relativeFrobeniusDistance(to: b.valueGram) < 1e-3)
            #expect(a.sampleKeys.relativeFrobeniusDistance(to: b.sampleKeys) < 1e-3)
            #expect(a.attentionInput?.gram == nil, "the compact form has no input Grams")
            #expect(a.attentionInput?.meanAbs == b.attentionInput?.meanAbs)
        }
    }

    /// Rewrites a valid file with one change and expects the reader to name what is wrong.
    func expectRejected(_ expected: String, edit: (inout [String: String], inout [(String, SafeTensorsDType, [Int], [UInt8])]) -> Void) throws {
        let (stats, provenance) = try capture(samples: 2)
        let good = try CalibrationFile.writer(stats, provenance: provenance)
        let source = temporaryFile("good.safetensors"), path = temporaryFile("bad.safetensors")
        defer { try? FileManager.default.removeItem(atPath: source); try? FileManager.default.removeItem(atPath: path) }
        try good.write(to: source)
        let file = try SafeTensorsFile(path: source)
        var metadata = file.metadata
        var tensors = try file.tensors.map { t -> (String, SafeTensorsDType, [Int], [UInt8]) in
            (t.name, try #require(file.dtype(of: t)), t.shape, Array(file.rawBytes(t)))
        }
        edit(&metadata, &tensors)
        var w = SafeTensorsWriter(metadata: metadata)
        for t in tensors { try w.add(t.0, dtype: t.1, shape: t.2, bytes: t.3) }
        try w.write(to: path)
        do {
            _ = try CalibrationFile.read(path: path)
            Issue.record("accepted a file with \(expected)")
        } catch let error as TensorFileError {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func rejectsWrongFormatVersionAndShapes() throws {
        try expectRejected("format") { m, _ in m["format"] = "something-else" }
        try expectRejected("version") { m, _ in m["version"] = "2" }
        try expectRejected("layer.1.k.gram") { _, t in
            if let i = t.firstIndex(where: { $0.0 == "layer.1.k.gram" }) { t[i].2 = [8, 32]; }
        }
        try expectRejected("layer.0.v.gram") { _, t in t.removeAll { $0.0 == "layer.0.v.gram" } }
        try expectRejected("layer.1.sample.x") { _, t in
            if let i = t.firstIndex(where: { $0.0 == "layer.1.sample.x" }) {
                t[i] = (t[i].0, t[i].1, [1, t[i].2[1]], Array(t[i].3.prefix(t[i].2[1] * 4)))
            }
        }
    }

    @Test func longTextsSplitIntoIndependentSequences() throws {
        let tokens = golden.tokens
        let (whole, p1) = try capture(sequences: [tokens])
        let (split, p2) = try capture(sequences: [Array(tokens.prefix(6)), Array(tokens.dropFirst(6))])
        #expect(p1.sequenceCount == 1 && p2.sequenceCount == 2)
        #expect(split.tokenCount == whole.tokenCount)
        // Layer 0's pre-RoPE K depends only on each token: equal Grams either way; later layers differ.
        #expect(split.layers[0].keyGram.relativeFrobeniusDistance(to: whole.layers[0].keyGram) < 1e-5)
        #expect(split.layers[1].keyGram.relativeFrobeniusDistance(to: whole.layers[1].keyGram) > 1e-4)
    }

    /// A policy built from captured statistics (activations basis, canonical signs) reproduces the
    /// numpy reference that builds its bases from the same text.
    @Test(arguments: ["rank4_window3", "rank4_bits4_group2_window3", "bits4_group4_window3"])
    func settingsFromCapturedStatisticsMatchNumpy(_ name: String) throws {
        let spec = try #require(golden.policies[name])
        let expected = try #require(golden.styles["adjacent"]?.cases[name])
        let (stats, _) = try capture()
        let settings = try CompressionSettings(keyRank: spec.rank, valueRank: spec.rank, window: spec.window,
                                               bits: spec.bits, groupSize: spec.group)
        let policy = try settings.policy(model: model, calibration: stats)
        let result = try Perplexity.evaluate(model: model, tokens: golden.tokens, policy: policy)
        #expect(abs(result.perplexity - expected.perplexity) / expected.perplexity < 1e-4,
                "\(name): \(result.perplexity) vs numpy \(expected.perplexity)")
    }

    /// Non-projection factors with A = U_rᵀW, B = U_r reconstruct exactly as the projection route.
    @Test func inputFactorRouteEqualsProjectionForProjectionFactors() throws {
        let (stats, _) = try capture()
        let w = try model.projectionHF(layer: 1, kind: .k)
        let u = ProjectionBasis.canonicalSigns(try ProjectionBasis.activations(keyGram: stats.layers[1].keyGram).u).prefixColumns(4)
        let quantizer = try UniformQuantizer(bits: 4, groupSize: 2)
        let x = stats.layers[1].sampleInputs
        let k = try matmul(x, .none, w, .transpose)
        let projection = try BranchCompression(basis: u, quantizer: quantizer).reconstruct(k)
        let factors = try BranchCompression(inputFactor: try matmul(u, .transpose, w, .none), outputFactor: u, quantizer: quantizer)
        let viaInputs = try factors.reconstruct(k, inputs: x)
        #expect(viaInputs.relativeFrobeniusDistance(to: projection) < 1e-3)
    }

    @Test func fittedPolicyRunsAndIsNoWorseThanActivationsOnSamples() throws {
        let (stats, _) = try capture(samples: 12)
        let fitted = try CompressionSettings(keyRank: 4, valueRank: 4, window: 0, bits: 3, groupSize: 4, basis: .fitted)
        let activations = try CompressionSettings(keyRank: 4, valueRank: 4, window: 0, bits: 3, groupSize: 4)
        let pf = try fitted.policy(model: model, calibration: stats)
        let pa = try activations.policy(model: model, calibration: stats)
        #expect(pf.keys.allSatisfy { $0.inputFactor != nil })
        for layer in 0..<2 {
            let x = stats.layers[layer].sampleInputs, k = stats.layers[layer].sampleKeys
            let ef = try pf.keys[layer].reconstruct(k, inputs: x).relativeFrobeniusDistance(to: k)
            let ea = try pa.keys[layer].reconstruct(k).relativeFrobeniusDistance(to: k)
            #expect(ef <= ea * (1 + 1e-6), "layer \(layer): fitted \(ef), activations \(ea)")
        }
        let r = try Perplexity.evaluate(model: model, tokens: golden.tokens, policy: pf)
        #expect(r.perplexity.isFinite)
    }
}
