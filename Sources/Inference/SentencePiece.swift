/// SentencePiece tokenization over a GGUF vocabulary with scores (llama.cpp's SPM tokenizer).
extension Tokenizer {
    /// One piece of the text while merging: a run of scalars, linked to its neighbours.
    private struct Symbol {
        var start: Int
        var count: Int
        var previous: Int
        var next: Int
    }

    /// A candidate merge of two adjacent symbols into a token of the vocabulary.
    private struct Bigram {
        var left: Int
        var right: Int
        var score: Float
        var size: Int

        /// Heap order: the higher score first, then the leftmost.
        func precedes(_ other: Bigram) -> Bool {
            score > other.score || (score == other.score && left < other.left)
        }
    }

    /// Encodes one run of text (no user-defined tokens inside): spaces become ▁, a ▁ goes in front
    /// with `spacePrefix`; adjacent pieces are merged, the pair whose concatenation is the
    /// highest-scoring token first (leftmost on ties), until no pair forms a token. Every merged
    /// piece is a token; a single character with no token becomes its UTF-8 bytes' `<0xXX>` tokens
    /// (or the unknown token for a byte without one).
    func encodeSentencePiece(_ text: ArraySlice<Unicode.Scalar>, spacePrefix: Bool, into out: inout [Int32]) {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.count + 1)
        if spacePrefix { scalars.append("\u{2581}") }
        for s in text { scalars.append(s == " " ? "\u{2581}" : s) }
        guard !scalars.isEmpty else { return }

        var symbols = scalars.indices.map { Symbol(start: $0, count: 1, previous: $0 - 1, next: $0 + 1) }
        symbols[symbols.count - 1].next = -1
        var heap: [Bigram] = []

        // Pieces as UTF-8 bytes (the vocabulary's keys: exact scalars, not canonical equivalence).
        func string(_ start: Int, _ count: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(4 * count)
            for s in scalars[start..<(start + count)] { appendUTF8(s, to: &bytes) }
            return bytes
        }
        func push(_ b: Bigram) {
            heap.append(b)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard heap[i].precedes(heap[parent]) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }
        func pop() -> Bigram {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var best = i
                    if l < heap.count, heap[l].precedes(heap[best]) { best = l }
                    if r < heap.count, heap[r].precedes(heap[best]) { best = r }
                    if best == i { break }
                    heap.swapAt(i, best)
                    i = best
                }
            }
            return top
        }
        func tryAdd(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let size = symbols[left].count + symbols[right].count
            guard let id = ids[string(symbols[left].start, size)] else { return }
            push(Bigram(left: left, right: right, score: scores[Int(id)], size: size))
        }

        for i in 1..<symbols.count { tryAdd(i - 1, i) }
        while !heap.isEmpty {
            let b = pop()
            let l = symbols[b.left], r = symbols[b.right]
            // Skip a bigram one of whose symbols has since been merged into another.
            guard l.count > 0, r.count > 0, l.count + r.count == b.size, l.next == b.right else { continue }
            symbols[b.left].count += r.count
            symbols[b.right].count = 0
            symbols[b.left].next = r.next
            if r.next >= 0 { symbols[r.next].previous = b.left }
            tryAdd(symbols[b.left].previous, b.left)
            tryAdd(b.left, symbols[b.left].next)
        }

        // A merged piece is always a token (merges only form tokens); a single character may not be.
        var i = 0
        while i >= 0 {
            appendPiece(string(symbols[i].start, symbols[i].count), into: &out)
            i = symbols[i].next
        }
    }
}
