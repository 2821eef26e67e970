import Testing
@testable import KVCompression

/// Hand-worked cases of DESIGN.md §4 "Bi-branch cache" for SmolLM2's shapes (d_kv = 192, d = 576), g = 32, m = 4.
@Suite struct MemoryModelTests {
    static func model(window: Int, group: Int? = 32, basis: BasisKind = .activations) throws -> BiBranchMemoryModel {
        try BiBranchMemoryModel(kvSize: 192, hiddenSize: 576, window: window, groupSize: group, basis: basis)
    }

    @Test func windowLongerThanContextIsTheBaseline() throws {
        // L = 20 < w = 32: every token is exact, 20·192·2 = 7680 bytes per branch, 15360 per layer.
        let m = try Self.model(window: 32)
        let s = LayerKVSetting(k: try BranchSetting(rank: 48, bits: 4), v: try BranchSetting(rank: 48, bits: 4))
        let expected: Double = 15360
        #expect(try m.layerBytes(s, contextLength: 20) == expected)
        #expect(try m.baselineLayerBytes(contextLength: 20) == expected)
        #expect(try m.effectiveRatio([s, s], contextLength: 20) == 0)
        // fitted also stores the window tokens' features: + 20·(48·4/8 + 2·4) = 20·32 = 640 per branch.
        let fitted = try Self.model(window: 32, basis: .fitted)
        let fittedExpected: Double = 15360 + 2 * 640
        #expect(try fitted.layerBytes(s, contextLength: 20) == fittedExpected)
    }

    @Test func fullRankSixteenBitsEqualsBaseline() throws {
        // r = d_kv, b = 16: 192·16/8 = 384 bytes a token and no metadata, as fp16 K itself.
        let m = try Self.model(window: 0)
        let full = try BranchSetting(rank: 192, bits: 16)
        #expect(try m.compressedTokenBytes(full) == 384)
        let s = LayerKVSetting(k: full, v: full)
        #expect(try m.layerBytes(s, contextLength: 1000) == (try m.baselineLayerBytes(contextLength: 1000)))
        #expect(try m.effectiveRatio([s], contextLength: 1000) == 0)
        #expect(try m.nominalRatio([s]) == 0)
        // b = 16 at lower rank: 2 bytes a feature, still no metadata.
        #expect(try m.compressedTokenBytes(try BranchSetting(rank: 64, bits: 16)) == 128)
    }

    @Test func groupNotDividingRank() throws {
        // r = 40, g = 32: ⌈40/32⌉ = 2 groups; 40·4/8 + 2·4 = 28 bytes a token.
        let m = try Self.model(window: 32)
        let s = try BranchSetting(rank: 40, bits: 4)
        #expect(try m.compressedTokenBytes(s) == 28)
        // L = 100: 32·384 + 68·28 = 12288 + 1904 = 14192.
        #expect(try m.branchBytes(s, contextLength: 100) == 14192)
        // r·b/8 fractional: r = 3, b = 3 → 1.125 + 1 group · 4.
        #expect(try m.compressedTokenBytes(try BranchSetting(rank: 3, bits: 3)) == 5.125)
        // One group per token when g is nil.
        let perToken = try Self.model(window: 0, group: nil)
        #expect(try perToken.compressedTokenBytes(s) == 24)
    }

    @Test func differentKAndVBatchAndRatios() throws {
        // K: r 48, b 4 → 24 + 2·4 = 32 B/token; V: r 96, b 2 → 24 + 3·4 = 36 B/token. L = 1000, w = 32, N = 2.
        // K: 32·384 + 968·32 = 43264; V: 12288 + 968·36 = 47136; layer = 2·90400 = 180800.
        let m = try Self.model(window: 32)
        let s = LayerKVSetting(k: try BranchSetting(rank: 48, bits: 4), v: try BranchSetting(rank: 96, bits: 2))
        #expect(try m.layerBytes(s, contextLength: 1000, batch: 2) == 180800)
        let layers = [LayerKVSetting](repeating: s, count: 30)
        #expect(try m.totalBytes(layers, contextLength: 1000, batch: 2) == 30 * 180800)
        let baseline: Double = 2 * 1000 * 192 * 2 * 2
        #expect(try m.baselineTotalBytes(layerCount: 30, contextLength: 1000, batch: 2) == 30 * baseline)
        let effective = try m.effectiveRatio(layers, contextLength: 1000, batch: 2)
        #expect(abs(effective - (1 - 180800 / baseline)) < 1e-12)
        // Nominal: 1 − (48·4 + 96·2)/(2·192·16) = 1 − 384/6144 = 0.9375, whatever L, w and N.
        #expect(try m.nominalRatio(layers) == 0.9375)
        // Factors in fp16: K 2·(48·576 + 192·48) = 73728, V 2·(96·576 + 192·96) = 147456.
        #expect(try m.factorParameterBytes(s.k) == 73728)
        #expect(try m.factorParameterBytes(layers) == 30 * (73728 + 147456))
    }

    @Test func fittedVersusProjection() throws {
        // r 48, b 4, g 32: 32 B/token. L = 100, w = 32.
        let s = try BranchSetting(rank: 48, bits: 4)
        let projection = try Self.model(window: 32, basis: .asvd)
        let fitted = try Self.model(window: 32, basis: .fitted)
        #expect(try projection.branchBytes(s, contextLength: 100) == 32 * 384 + 68 * 32)
        #expect(try fitted.branchBytes(s, contextLength: 100) == 32 * 384 + 100 * 32)
        // Window 0: the same.
        #expect(try Self.model(window: 0, basis: .fitted).branchBytes(s, contextLength: 100)
                == (try Self.model(window: 0).branchBytes(s, contextLength: 100)))
    }

    @Test func invalidSettingsAreTypedErrors() throws {
        #expect(throws: KVCompressionError.self) { try BranchSetting(rank: 8, bits: 9) }
        #expect(throws: KVCompressionError.self) { try BranchSetting(rank: -1, bits: 4) }
        let m = try Self.model(window: 0)
        #expect(throws: KVCompressionError.self) { try m.compressedTokenBytes(try BranchSetting(rank: 193, bits: 4)) }
        #expect(throws: KVCompressionError.self) { try m.baselineLayerBytes(contextLength: -1) }
        #expect(throws: KVCompressionError.self) { try BiBranchMemoryModel(kvSize: 192, hiddenSize: 576, window: 0, groupSize: 0, basis: .weights) }
    }

    /// Gemma 3's shapes (d_kv = 256, d = 640), 6 layers with the sliding window W = 512 on layers 0…4.
    @Test func slidingWindowLayersHoldAtMostTheWindow() throws {
        let sliding = Set(0..<5)
        let m = try BiBranchMemoryModel(kvSize: 256, hiddenSize: 640, window: 32, groupSize: 32, basis: .activations,
                                        slidingWindow: 512, slidingLayers: sliding)
        let s = LayerKVSetting(k: try BranchSetting(rank: 64, bits: 4), v: try BranchSetting(rank: 64, bits: 4))
        // Per token compressed: 64·4/8 + 2·4 = 40 bytes; exact: 256·2 = 512 bytes.
        // L = 4096 on a global layer: 32·512 + 4064·40 = 178 944 per branch.
        #expect(try m.layerBytes(s, contextLength: 4096, layer: 5) == 2 * 178_944)
        // On a sliding layer L is min(4096, 512) = 512: 32·512 + 480·40 = 35 584 per branch.
        #expect(try m.layerBytes(s, contextLength: 4096, layer: 0) == 2 * 35_584)
        // The baseline caps the same way: 2·512·256·2 vs 2·4096·256·2.
        #expect(try m.baselineLayerBytes(contextLength: 4096, layer: 0) == 524_288)
        #expect(try m.baselineLayerBytes(contextLength: 4096, layer: 5) == 4_194_304)
        let layers = Array(repeating: s, count: 6)
        let total = 5 * 2 * 35_584.0 + 2 * 178_944
        #expect(try m.totalBytes(layers, contextLength: 4096) == total)
        let baseline = 5 * 524_288.0 + 4_194_304
        #expect(try m.baselineTotalBytes(layerCount: 6, contextLength: 4096) == baseline)
        #expect(try m.effectiveRatio(layers, contextLength: 4096) == 1 - total / baseline)
        // A sliding window no longer than the exact window leaves nothing to save there.
        let tight = try BiBranchMemoryModel(kvSize: 256, hiddenSize: 640, window: 512, groupSize: 32, basis: .activations,
                                            slidingWindow: 512, slidingLayers: sliding)
        #expect(!tight.canSave(layer: 0, contextLength: 4096) && tight.canSave(layer: 5, contextLength: 4096))
        #expect(try tight.layerBytes(s, contextLength: 4096, layer: 0) == (try tight.baselineLayerBytes(contextLength: 4096, layer: 0)))
        #expect(throws: KVCompressionError.self) {
            try BiBranchMemoryModel(kvSize: 256, hiddenSize: 640, window: 0, groupSize: 32, basis: .weights, slidingWindow: 0)
        }
    }
}
