/// The bit layout of packed quantization codes.
///
/// A row of n codes is stored as ⌈n/32⌉ *chunks* of 32 codes (the last one padded with code 0);
/// a chunk of b-bit codes is exactly b little-endian `UInt32` words, so storage is b/8 bytes a
/// code plus the padding of the last chunk of each row.
///
/// 4-bit codes (the fused GEMV's fast path) use *nibble words*: word i (0…3) of a chunk holds
/// codes 4t + i at bits 4t…4t+3 (t = 0…7), and a 4-bit row is padded to an even number of chunks
/// (64 codes). One 32-byte vector load of two chunks gives lane l = 4h + i the codes
/// 32h + 4t + i, and step t is a single mask (`v & 0xF·16ᵗ`, value u·16ᵗ, compensated by an x
/// pre-scaled by 16⁻ᵗ; the AVX2 kernel reads the masked lane as a denormal Float, see
/// FusedGEMV4.swift) or, for t = 7, a shift: no widening shuffles. 4-bit rows are also *tiled*:
/// rows are taken in tiles of ``nibbleTileRows`` (4; the last tile of a matrix may hold fewer, n
/// rows), a tile starts at word `firstRow·wordsPerRow` as a row-major matrix would, and inside it
/// the 64-code pairs are interleaved: pair k of the tile's row i is the 8 words at `(k·n + i)·8`.
/// So the GEMV, which works on 4 rows at a time, reads one sequential stream instead of 4 (the
/// hardware prefetchers and the software prefetch then keep up with memory).
/// ``chunkOffset(row:chunk:rows:perRow:bits:)`` finds any chunk.
///
/// Other widths use *bit planes*. Within a chunk, code j is written
/// j = 8t + l with lane l ∈ 0..<8 and step t ∈ 0..<4, and a b-bit code is split into *bit planes*
/// (lowest bits first): b = 8 → [8]; 4 → [4]; 2 → [2]; 3 → [2, 1]; 5 → [4, 1]; 6 → [4, 2];
/// 7 → [4, 2, 1]. A plane of width p takes the next p words of the chunk and holds p bits of every code:
/// - p = 8: word l, bits 8t..8t+7 (one byte per step);
/// - p = 4: the 16-bit half-word l (bytes 2l, 2l+1 of the plane), bits 4t..4t+3;
/// - p = 2: byte l of the plane, bits 2t..2t+1;
/// - p = 1: bit j of the plane's single word.
/// So one vector load of a plane gives lane l the bits of codes l, 8+l, 16+l, 24+l, and step t
/// (a shift by p·t and a mask) yields the 8 consecutive codes 8t…8t+7: the fused GEMV decodes
/// eight codes with three vector operations and multiplies them with x[8t..<8t+8] directly.
/// Codes are unsigned: asymmetric q ∈ 0…2ᵇ−1; symmetric q ∈ −(2^(b−1)−1)…2^(b−1)−1 is stored as q + 2^(b−1) − 1.
public enum BitPacking {
    /// Codes per chunk.
    public static let chunkCodes = 32

    /// Bit-plane widths of a b-bit code, lowest bits first.
    public static func planes(bits: Int) -> [Int] {
        switch bits {
        case 8: return [8]
        case 4: return [4]
        case 2: return [2]
        case 3: return [2, 1]
        case 5: return [4, 1]
        case 6: return [4, 2]
        case 7: return [4, 2, 1]
        default: return []
        }
    }

    /// Rows of a 4-bit tile (see the type's documentation).
    public static let nibbleTileRows = 4

    /// Word offset of chunk `chunk` of row `row` in a matrix of `rows` rows of `perRow` words packed
    /// at `bits` bits: row-major for every width but 4, tiled for 4 (see the type's documentation).
    @inlinable
    public static func chunkOffset(row: Int, chunk: Int, rows: Int, perRow: Int, bits: Int) -> Int {
        guard bits == 4 else { return row * perRow + chunk * bits }
        let first = row - row % nibbleTileRows
        let tileRows = Swift.min(nibbleTileRows, rows - first)
        return first * perRow + ((chunk >> 1) * tileRows + row - first) * 8 + (chunk & 1) * 4
    }

    /// Words of one row of `count` codes at `bits` bits.
    public static func wordsPerRow(count: Int, bits: Int) -> Int {
        if bits == 4 { return (count + 2 * chunkCodes - 1) / (2 * chunkCodes) * 8 }
        return (count + chunkCodes - 1) / chunkCodes * bits
    }

    /// Packs up to 32 codes (missing ones are 0) into `bits` words at `words`.
    @inlinable
    static func packChunk(_ codes: UnsafeBufferPointer<UInt8>, bits: Int, into words: UnsafeMutablePointer<UInt32>) {
        for w in 0..<bits { words[w] = 0 }
        if bits == 4 {
            for j in 0..<codes.count { words[j & 3] |= UInt32(codes[j] & 0xF) << UInt32(4 * (j >> 2)) }
            return
        }
        var planeWord = 0, shift = 0
        for p in planes(bits: bits) {
            for j in 0..<codes.count {
                let v = (UInt32(codes[j]) >> UInt32(shift)) & ((1 << UInt32(p)) - 1)
                let (t, l) = (j >> 3, j & 7)
                let bitIndex: Int  // bit offset within the plane
                switch p {
                case 8: bitIndex = 32 * l + 8 * t
                case 4: bitIndex = 16 * l + 4 * t
                case 2: bitIndex = 8 * l + 2 * t
                default: bitIndex = j
                }
                words[planeWord + bitIndex >> 5] |= v << UInt32(bitIndex & 31)
            }
            planeWord += p
            shift += p
        }
    }

    /// The code at position `j` (0..<32) of the chunk at `words`.
    @inlinable
    static func code(at j: Int, bits: Int, chunk words: UnsafePointer<UInt32>) -> UInt8 {
        if bits == 4 { return UInt8(truncatingIfNeeded: (words[j & 3] >> UInt32(4 * (j >> 2))) & 0xF) }
        var planeWord = 0, shift = 0, result: UInt32 = 0
        let (t, l) = (j >> 3, j & 7)
        for p in planes(bits: bits) {
            let bitIndex: Int
            switch p {
            case 8: bitIndex = 32 * l + 8 * t
            case 4: bitIndex = 16 * l + 4 * t
            case 2: bitIndex = 8 * l + 2 * t
            default: bitIndex = j
            }
            let v = (words[planeWord + bitIndex >> 5] >> UInt32(bitIndex & 31)) & ((1 << UInt32(p)) - 1)
            result |= v << UInt32(shift)
            planeWord += p
            shift += p
        }
        return UInt8(truncatingIfNeeded: result)
    }

    /// Packs `rows` rows of `count` codes each (row-major) into chunked words (4-bit: tiled).
    /// - Precondition: every code is below 2^bits and `bits` is 2…8.
    public static func pack(_ codes: [UInt8], rows: Int, count: Int, bits: Int) -> [UInt32] {
        precondition((2...8).contains(bits) && codes.count == rows * count, "BitPacking.pack: bad shape or width")
        let perRow = wordsPerRow(count: count, bits: bits)
        var words = [UInt32](repeating: 0, count: rows * perRow)
        codes.withUnsafeBufferPointer { c in
            words.withUnsafeMutableBufferPointer { w in
                for r in 0..<rows {
                    var start = 0, chunk = 0
                    while start < count {
                        let end = Swift.min(start + chunkCodes, count)
                        packChunk(UnsafeBufferPointer(rebasing: c[(r * count + start)..<(r * count + end)]),
                                  bits: bits, into: w.baseAddress! + chunkOffset(row: r, chunk: chunk, rows: rows,
                                                                                  perRow: perRow, bits: bits))
                        start = end
                        chunk += 1
                    }
                }
            }
        }
        return words
    }

    /// Unpacks `rows` rows of `count` codes from words made by ``pack(_:rows:count:bits:)``.
    public static func unpack(_ words: [UInt32], rows: Int, count: Int, bits: Int) -> [UInt8] {
        let perRow = wordsPerRow(count: count, bits: bits)
        precondition((2...8).contains(bits) && words.count == rows * perRow, "BitPacking.unpack: bad shape or width")
        var codes = [UInt8](repeating: 0, count: rows * count)
        words.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                for j in 0..<count {
                    let chunk = chunkOffset(row: r, chunk: j >> 5, rows: rows, perRow: perRow, bits: bits)
                    codes[r * count + j] = code(at: j & 31, bits: bits, chunk: w.baseAddress! + chunk)
                }
            }
        }
        return codes
    }
}
