import Foundation
import KVCompression
import TerminalUI

/// Where the parts of the screen go at a given size.
public struct ExplorerLayout: Sendable, Equatable {
    /// Full (≥ 100×30), compact (≥ 80×24) or too small.
    public enum Kind: Sendable, Equatable { case full, compact, tooSmall }

    public var kind: Kind
    public var header: Rect, table: Rect, plot: Rect, metrics: Rect, footer: Rect

    /// The minimum size of the compact and the full layout.
    public static let compactMinimum = (width: 80, height: 24)
    public static let fullMinimum = (width: 100, height: 30)

    /// The layout for a `width` × `height` screen.
    public init(width: Int, height: Int) {
        let screen = Rect(x: 0, y: 0, width: width, height: height)
        if width >= Self.fullMinimum.width && height >= Self.fullMinimum.height {
            kind = .full
        } else if width >= Self.compactMinimum.width && height >= Self.compactMinimum.height {
            kind = .compact
        } else {
            kind = .tooSmall
            header = screen; table = Rect(x: 0, y: 0, width: 0, height: 0)
            plot = table; metrics = table; footer = table
            return
        }
        let (h, rest) = screen.splitTop(2)
        let body = Rect(x: rest.x, y: rest.y, width: rest.width, height: rest.height - 2)
        footer = Rect(x: 0, y: height - 2, width: width, height: 2)
        header = h
        let (left, right) = body.splitLeft(kind == .full ? 58 : 38)
        table = left
        let metricsHeight = kind == .full ? 12 : 9
        let (p, m) = right.splitTop(right.height - metricsHeight)
        plot = p
        metrics = m
    }

    /// The table row (layer or tensor index) under a click at (x, y), if any.
    public static func tableRow(at x: Int, _ y: Int, state: ExplorerState) -> Int? {
        let layout = ExplorerLayout(width: state.width, height: state.height)
        guard layout.kind != .tooSmall else { return nil }
        let inner = layout.table.inset(1)
        let firstRow = inner.y + 1  // below the column headings
        guard x >= inner.x, x < inner.maxX, y >= firstRow, y < inner.maxY else { return nil }
        let visible = inner.height - 1
        let (count, selected) = state.mode == .weights
            ? (state.resources.tensors.count, state.selectedTensor) : (state.settings.layers.count, state.selectedLayer)
        let row = scrollOffset(selected: selected, count: count, visible: visible) + (y - firstRow)
        return row < count ? row : nil
    }

    /// The first visible row so that `selected` stays in view (centered when possible).
    static func scrollOffset(selected: Int, count: Int, visible: Int) -> Int {
        guard visible > 0, count > visible else { return 0 }
        return min(max(0, selected - visible / 2), count - visible)
    }
}

extension Explorer {
    /// Renders the whole screen: a pure function of the state and the size.
    public static func view(_ state: ExplorerState, width: Int, height: Int) -> ScreenBuffer {
        var buf = ScreenBuffer(width: width, height: height, fill: Cell(" ", Style(.text)))
        let layout = ExplorerLayout(width: width, height: height)
        guard layout.kind != .tooSmall else {
            let lines = ["terminal too small: \(width)×\(height)",
                         "kvscope needs at least \(ExplorerLayout.compactMinimum.width)×\(ExplorerLayout.compactMinimum.height)",
                         "resize, or press q to quit"]
            for (i, line) in lines.enumerated() {
                let x = max(0, (width - line.unicodeScalars.count) / 2)
                buf.put(line, x: x, y: height / 2 - 1 + i, style: Style(i == 0 ? .warn : .text, bold: i == 0))
            }
            return buf
        }
        drawHeader(state, layout, &buf)
        if state.mode == .weights {
            drawWeightTable(state, layout, &buf)
            drawWeightPanel(state, layout, &buf)
        } else {
            drawLayerTable(state, layout, &buf)
            drawPlot(state, layout.plot, &buf)
            drawMetrics(state, layout, &buf)
        }
        drawFooter(state, layout, &buf)
        switch state.overlay {
        case .help: drawHelp(state, &buf)
        case .prompt(let p): drawDialog(title: p.title, lines: ["> " + p.text + "█", "Enter accepts · Esc cancels"], &buf)
        case .confirm(let c): drawDialog(title: "Confirm", lines: [c.question], &buf)
        case .log(let scroll): drawLog(state, scroll: scroll, &buf)
        case nil: break
        }
        return buf
    }

    // MARK: header and footer

    static func drawHeader(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = layout.header
        let bar = Style(.headerText, on: .header)
        buf.fill(Rect(x: r.x, y: r.y, width: r.width, height: 1), with: Cell(" ", bar))
        let info = state.resources.info
        var right = "L \(state.settings.contextLength) · N \(state.settings.batch)"
        if state.mode != .weights {
            // What `b` and the memory figures use: the context above, this group.
            right = "L \(state.settings.contextLength) · g \(state.settings.groupSize.map(String.init) ?? "token") · N \(state.settings.batch)"
        }
        if state.mode == .weights {
            let t = ExplorerMetrics.weightTotals(state)
            right += " · weights \(ExplorerMetrics.mebibytes(t.bytes)) · " + String(format: "%.2f bpw", t.bitsPerWeight)
        } else if let m = ExplorerMetrics.kvMemory(state) {
            right += " · KV \(ExplorerMetrics.mebibytes(m.totalBytes)) of \(ExplorerMetrics.mebibytes(m.baselineBytes))"
        }
        right += " "
        // The totals always show; the model description gives way (details first, then the name).
        let room = r.width - right.unicodeScalars.count - 1
        let candidates = [" kvscope  \(info.name) · \(info.architecture) · \(info.layerCount) layers · d_kv \(info.kvSize)",
                          " kvscope  \(info.name) · \(info.architecture) · \(info.layerCount) layers",
                          " kvscope  \(info.name)"]
        var left = candidates.first { $0.unicodeScalars.count <= room } ?? candidates[candidates.count - 1]
        if left.unicodeScalars.count > room {
            left = room > 1 ? String(String.UnicodeScalarView(left.unicodeScalars.prefix(room - 1))) + "…" : ""
        }
        buf.put(left, x: r.x, y: r.y, style: Style(.headerText, on: .header, bold: true), maxWidth: max(0, room))
        buf.putRight(right, rightEdge: r.maxX, y: r.y, style: bar)
        // Mode tabs.
        var x = r.x + 1
        for mode in ExplorerMode.allCases {
            let label = " \(mode.rawValue) "
            let style = mode == state.mode ? Style(.selectionText, on: .selection, bold: true) : Style(.muted)
            x += buf.put(label, x: x, y: r.y + 1, style: style)
            x += buf.put("│", x: x, y: r.y + 1, style: Style(.border))
        }
        let k = "\(state.kind == .k ? "K" : "V") · source \(state.source.rawValue)\(state.normalized ? " · σ/σ₁" : "") · theme \(state.themeName)"
        buf.putRight(k + " ", rightEdge: r.maxX, y: r.y + 1, style: Style(.muted))
    }

    static func drawFooter(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = layout.footer
        let hints = KeyMap.bindings.filter { $0.hint != nil && $0.isEnabled(state) }.compactMap(\.hint).joined(separator: "  ")
        buf.put(" " + hints, x: r.x, y: r.y, style: Style(.muted), maxWidth: r.width)
        let bar = Style(.statusText, on: .statusBar)
        buf.fill(Rect(x: r.x, y: r.y + 1, width: r.width, height: 1), with: Cell(" ", bar))
        var right = ""
        if let job = state.jobs.first {
            let cells = 16
            let filled = Int((min(max(job.fraction, 0), 1) * Double(cells)).rounded(.down))
            right = "\(job.kind.rawValue) " + String(repeating: "█", count: filled) + String(repeating: "░", count: cells - filled)
                + String(format: " %3.0f%%", job.fraction * 100) + (state.jobs.count > 1 ? " +\(state.jobs.count - 1)" : "")
                + " (Esc cancels) "
        } else if let stopped = state.stoppedJobs.first {
            // A stopped job stays visible after its status line has been overwritten.
            let how = state.phase(stopped) == .cancelled ? "cancelled" : "failed"
            right = "\(stopped.rawValue) \(how)" + (state.stoppedJobs.count > 1 ? " +\(state.stoppedJobs.count - 1)" : "") + " · R restarts "
            // The status line comes first; this notice shows whenever it fits beside it.
            if state.status.unicodeScalars.count + right.unicodeScalars.count + 2 > r.width { right = "" }
        }
        let rightWidth = right.unicodeScalars.count
        buf.put(" " + state.status, x: r.x, y: r.y + 1, style: bar, maxWidth: max(0, r.width - rightWidth - 1))
        if !right.isEmpty {
            buf.putRight(right, rightEdge: r.maxX, y: r.y + 1, style: Style(state.jobs.isEmpty ? .warn : .accent, on: .statusBar))
        }
    }

    // MARK: KV table, plot and metrics

    static func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let c = s.unicodeScalars.count
        guard c < n else { return s }
        let fill = String(repeating: " ", count: n - c)
        return left ? s + fill : fill + s
    }

    static func bitsLabel(_ b: Int) -> String { b == 16 ? "16" : "\(b)" }

    static func drawLayerTable(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = layout.table
        buf.box(r, title: "Layers (\(state.kind == .k ? "K" : "V") errors)")
        let inner = r.inset(1)
        let full = layout.kind == .full
        let kindName = state.kind == .k ? "K" : "V"
        let heading = full
            ? pad("lyr", 3) + pad("K r", 6) + pad("b", 3) + pad("V r", 6) + pad("b", 3) + pad("e_w(\(kindName))", 9)
                + pad("e_kv(\(kindName))", 9) + pad("MiB", 9)
            : pad("lyr", 3) + pad("K r", 5) + pad("b", 3) + pad("V r", 5) + pad("b", 3) + pad("e_w", 7) + pad("MiB", 7)
        buf.put(" " + heading, x: inner.x, y: inner.y, style: Style(.accent, bold: true), maxWidth: inner.width)
        let memory = ExplorerMetrics.kvMemory(state)
        let visible = inner.height - 1
        let offset = ExplorerLayout.scrollOffset(selected: state.selectedLayer, count: state.settings.layers.count, visible: visible)
        for row in 0..<max(0, visible) {
            let i = offset + row
            guard state.settings.layers.indices.contains(i) else { break }
            let c = state.settings.layers[i]
            let ew = cell(ExplorerMetrics.weightError(state, layer: i, kind: state.kind), job: .errorModel, state)
            let mib = memory.map { String(format: "%.3f", $0.layerBytes[i] / 1_048_576) } ?? "?"
            var line = pad("\(i)", 3) + pad("\(c.k.rank)", full ? 6 : 5) + pad(bitsLabel(c.k.bits), 3)
                + pad("\(c.v.rank)", full ? 6 : 5) + pad(bitsLabel(c.v.bits), 3) + pad(ew, full ? 9 : 7)
            if full { line += pad(cell(ExplorerMetrics.kvError(state, layer: i, kind: state.kind), job: kvErrorJob(state), state), 9) }
            line += pad(mib, full ? 9 : 7)
            let selected = i == state.selectedLayer
            let style = selected ? Style(.selectionText, on: .selection, bold: true) : Style(.text)
            if selected { buf.fill(Rect(x: inner.x, y: inner.y + 1 + row, width: inner.width, height: 1), with: Cell(" ", style)) }
            buf.put(" " + line, x: inner.x, y: inner.y + 1 + row, style: style, maxWidth: inner.width)
        }
    }

    /// The spectrum of the selected layer: log σ (braille), cumulative energy, rank marker, shaded tail.
    static func drawPlot(_ state: ExplorerState, _ r: Rect, _ buf: inout ScreenBuffer) {
        let kindName = state.kind == .k ? "K" : "V"
        let what = state.source == .weights ? "W_\(kindName.lowercased())" : kindName
        guard let spectra = state.resources.spectra(state.source), spectra.indices.contains(state.selectedLayer) else {
            buf.box(r, title: "Spectrum")
            buf.put("no \(state.source.rawValue) spectra", x: r.x + 2, y: r.y + 1, style: Style(.muted), maxWidth: r.width - 4)
            return
        }
        let spectrum = spectra[state.selectedLayer][state.kind]
        let rank = state.currentBranch.rank
        let energy = spectrum.energyFraction(rank: rank)
        let title = "σ of \(what), layer \(state.selectedLayer) · r=\(rank) keeps \(ExplorerMetrics.percent(energy)) energy"
        let short = "σ \(what) L\(state.selectedLayer) · r=\(rank) · \(ExplorerMetrics.percent(energy)) energy"
        buf.box(r, title: title.unicodeScalars.count + 6 <= r.width ? title : short)
        let inner = r.inset(1)
        let axisWidth = 6
        let canvasRect = Rect(x: inner.x + axisWidth, y: inner.y, width: inner.width - axisWidth - 1, height: inner.height - 2)
        // Too small to read: draw nothing rather than garbage.
        guard canvasRect.width >= 8, canvasRect.height >= 3 else { return }
        let values = spectrum.singularValues.map(Double.init)
        let sigma1 = values.first ?? 1
        let shown = state.normalized && sigma1 > 0 ? values.map { $0 / sigma1 } : values
        let positive = shown.filter { $0 > 0 }
        guard let hi = positive.max(), let loRaw = positive.min(), hi > 0 else { return }
        // Whole decades around the data.
        let lo = min(loRaw, hi / 10)
        let logLo = floor(log10(lo)), logHi = ceil(log10(hi))
        var canvas = BrailleCanvas(columns: canvasRect.width, rows: canvasRect.height)
        let dotW = canvas.dotWidth, dotH = canvas.dotHeight
        let n = shown.count
        func xDot(_ i: Int) -> Int { n <= 1 ? 0 : Int((Double(i) / Double(n - 1) * Double(dotW - 1)).rounded()) }
        func yDot(_ v: Double) -> Int {
            guard v > 0, logHi > logLo else { return dotH - 1 }
            let t = (log10(v) - logLo) / (logHi - logLo)
            return Int(((1 - t) * Double(dotH - 1)).rounded())
        }
        let markerX = xDot(max(0, min(n - 1, rank - 1)))
        // The discarded tail: shaded under the curve.
        for i in rank..<max(rank, n) {
            let x = xDot(i)
            if x % 4 == 0 { canvas.vertical(x: x, from: min(dotH - 1, yDot(shown[i]) + 2), to: dotH - 1, style: Style(.plotTail)) }
        }
        // Cumulative energy (linear 0…1 over the full height).
        var previous: (Int, Int)?
        for i in 0..<n {
            let e = spectrum.energyFraction(rank: i + 1)
            let p = (xDot(i), Int(((1 - e) * Double(dotH - 1)).rounded()))
            if let q = previous { canvas.line(from: q, to: p, style: Style(.plotSecondary)) } else { canvas.set(p.0, p.1, style: Style(.plotSecondary)) }
            previous = p
        }
        // log σ.
        previous = nil
        for i in 0..<n {
            let p = (xDot(i), yDot(shown[i]))
            let style = i < rank ? Style(.plotLine, bold: true) : Style(.plotTail)
            if let q = previous { canvas.line(from: q, to: p, style: style) } else { canvas.set(p.0, p.1, style: style) }
            previous = p
        }
        canvas.vertical(x: markerX, from: 0, to: dotH - 1, style: Style(.marker, bold: true))
        canvas.render(into: &buf, x: canvasRect.x, y: canvasRect.y)
        // Decade ticks on the y axis.
        for tick in AxisTicks.logDecades(low: pow(10, logLo), high: pow(10, logHi)) {
            let row = canvasRect.y + yDot(tick) / 4
            buf.putRight(AxisTicks.decadeLabel(tick), rightEdge: canvasRect.x - 1, y: row, style: Style(.axis))
            buf.put("┤", x: canvasRect.x - 1, y: row, style: Style(.axis))
        }
        // Rank axis: 1/2/5 ticks.
        let axisY = canvasRect.maxY
        buf.fill(Rect(x: canvasRect.x, y: axisY, width: canvasRect.width, height: 1), with: Cell("─", Style(.axis)))
        for tick in AxisTicks.linear(low: 1, high: Double(n), target: 5) {
            let i = Int(tick) - 1
            guard i >= 0, i < n else { continue }
            let cx = canvasRect.x + xDot(i) / 2
            buf.put("┴", x: cx, y: axisY, style: Style(.axis))
            let label = "\(Int(tick))"
            buf.put(label, x: min(cx, canvasRect.maxX - label.count), y: axisY + 1, style: Style(.axis))
        }
        buf.put("rank", x: inner.x, y: axisY + 1, style: Style(.muted))
        let legend = (state.normalized ? "σ/σ₁" : "σ") + " (log)  energy (0…1)"
        buf.putRight(" " + legend + " ", rightEdge: r.maxX - 1, y: r.maxY - 1, style: Style(.muted))
    }

    static func drawMetrics(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = layout.metrics
        buf.box(r, title: state.mode == .eval ? "Knobs · metrics · perplexity of the KV cache only" : "Knobs · metrics")
        let inner = r.inset(1)
        let s = state.settings
        let c = state.currentBranch
        let layer = state.selectedLayer
        let kindName = state.kind == .k ? "K" : "V"
        let group = s.groupSize.map(String.init) ?? "token"
        var lines: [(String, Style)] = []
        lines.append(("layer \(layer) \(kindName): rank \(c.rank)/\(state.resources.info.kvSize)  bits \(c.bits)", Style(.text, bold: true)))
        lines.append(("window \(s.window)  group \(group)  L \(s.contextLength)  N \(s.batch)", Style(.text)))
        let ew = ExplorerMetrics.weightError(state, layer: layer, kind: state.kind)
        let ekv = ExplorerMetrics.kvError(state, layer: layer, kind: state.kind)
        var errLine = "e_w \(cell(ew, job: .errorModel, state))   e_kv \(cell(ekv, job: kvErrorJob(state), state))"
        if state.resources.kvSpectra == nil { errLine += "  (e_kv: needs calibration)" }
        else if case .pending = ekv {
            errLine += state.phase(kvErrorJob(state)).isRunning ? "  (e_kv table filling…)" : "  (\(kvErrorJob(state).rawValue) stopped: R restarts)"
        }
        lines.append((errLine, Style(.text)))
        if let m = ExplorerMetrics.kvMemory(state) {
            lines.append(("layer \(ExplorerMetrics.mebibytes(m.layerBytes[layer]))   total \(ExplorerMetrics.mebibytes(m.totalBytes))", Style(.text)))
            lines.append(("fp16 \(ExplorerMetrics.mebibytes(m.baselineBytes))   factors \(ExplorerMetrics.mebibytes(Double(m.factorBytes)))", Style(.muted)))
            lines.append(("effective \(ExplorerMetrics.percent(m.effectiveRatio))   nominal \(ExplorerMetrics.percent(m.nominalRatio))", Style(.good, bold: true)))
        } else {
            lines.append(("memory: a setting is out of range", Style(.bad)))
        }
        if state.mode == .eval || state.perplexity != nil {
            if let p = state.perplexity {
                let stale = p.settings == state.settings ? "" : "  (settings changed since)"
                // The forward pass runs the KV-cache plan on unquantized weights: say so (docs/config.md).
                lines.append((String(format: "KV-only perplexity %.3f  (fp16 cache %.3f, %d tokens)", p.compressed, p.baseline, p.tokens) + stale, Style(.accent, bold: true)))
            } else if state.resources.info.canRunInference {
                lines.append(("perplexity: press p to measure (KV cache only; runs in the background)", Style(.muted)))
            } else {
                lines.append(("perplexity needs the full model; open a llama GGUF with `kvscope tui MODEL`", Style(.warn)))
            }
        }
        for (i, (text, style)) in lines.enumerated() where i < inner.height {
            buf.put(text, x: inner.x + 1, y: inner.y + i, style: style, maxWidth: inner.width - 1)
        }
    }

    // MARK: Weights mode

    static func shortName(_ name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(7)) : name
    }

    static func drawWeightTable(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = layout.table
        buf.box(r, title: "Weight matrices")
        let inner = r.inset(1)
        let nameWidth = max(8, inner.width - 1 - 4 - 9 - 7 - 8)
        buf.put(" " + pad("tensor", nameWidth, left: true) + pad("bits", 4) + pad("rel err", 9) + pad("bpw", 7) + pad("MiB", 8),
                x: inner.x, y: inner.y, style: Style(.accent, bold: true), maxWidth: inner.width)
        let visible = inner.height - 1
        let offset = ExplorerLayout.scrollOffset(selected: state.selectedTensor, count: state.resources.tensors.count, visible: visible)
        for row in 0..<max(0, visible) {
            let i = offset + row
            guard state.resources.tensors.indices.contains(i), let f = ExplorerMetrics.weight(state, tensor: i) else { break }
            var name = shortName(state.resources.tensors[i].name)
            if name.unicodeScalars.count > nameWidth - 1 { name = String(name.prefix(nameWidth - 1)) }
            let err = state.settings.weights[i].bits == 16 ? "fp16" : cell(f.relativeError, job: .weightTables, state)
            let line = pad(name, nameWidth, left: true) + pad("\(state.settings.weights[i].bits)", 4) + pad(err, 9)
                + pad(String(format: "%.2f", f.bitsPerWeight), 7) + pad(String(format: "%.3f", f.bytes / 1_048_576), 8)
            let selected = i == state.selectedTensor
            let style = selected ? Style(.selectionText, on: .selection, bold: true) : Style(.text)
            if selected { buf.fill(Rect(x: inner.x, y: inner.y + 1 + row, width: inner.width, height: 1), with: Cell(" ", style)) }
            buf.put(" " + line, x: inner.x, y: inner.y + 1 + row, style: style, maxWidth: inner.width)
        }
    }

    static func drawWeightPanel(_ state: ExplorerState, _ layout: ExplorerLayout, _ buf: inout ScreenBuffer) {
        let r = Rect(x: layout.plot.x, y: layout.plot.y, width: layout.plot.width, height: layout.plot.height + layout.metrics.height)
        buf.box(r, title: "Weight quantization (LLM-MQ)")
        let inner = r.inset(1)
        let s = state.settings
        var lines: [(String, Style)] = []
        if let f = ExplorerMetrics.weight(state, tensor: state.selectedTensor) {
            let t = state.resources.tensors[state.selectedTensor]
            let bits = s.weights[state.selectedTensor].bits
            lines.append(("\(t.name)  [\(t.rows)×\(t.cols)]  role \(t.role)", Style(.text, bold: true)))
            let err = bits == 16 ? "0 (fp16)" : cell(f.relativeError, job: .weightTables, state)
            lines.append(("bits \(bits)   group \(s.weightGroupSize.map(String.init) ?? "row")   outliers \(ExplorerMetrics.percent(s.outlierFraction))", Style(.text)))
            lines.append(("rel error ‖W−Ŵ‖/‖W‖ \(err)", Style(.text)))
            lines.append(("bits/weight \(String(format: "%.3f", f.bitsPerWeight))   \(ExplorerMetrics.mebibytes(f.bytes))", Style(.text)))
        }
        let totals = ExplorerMetrics.weightTotals(state)
        lines.append(("", Style(.text)))
        lines.append(("all \(state.resources.tensors.count) matrices: \(ExplorerMetrics.mebibytes(totals.bytes)) of \(ExplorerMetrics.mebibytes(totals.fp16Bytes)) fp16", Style(.good, bold: true)))
        lines.append((String(format: "%.3f bits/weight", totals.bitsPerWeight)
                      + "   ratio \(ExplorerMetrics.percent(totals.fp16Bytes > 0 ? 1 - totals.bytes / totals.fp16Bytes : 0))", Style(.good, bold: true)))
        lines.append(("", Style(.text)))
        lines.append(("role  n  bits  rel err*       MiB", Style(.accent, bold: true)))
        for role in ExplorerMetrics.weightRoles(state) {
            let bits = role.bits.map(String.init) ?? "mixed"
            lines.append((pad(role.role, 4, left: true) + pad("\(role.count)", 3) + pad(bits, 6) + pad(cell(role.relativeError, job: .weightTables, state), 10)
                          + pad(String(format: "%.3f", role.bytes / 1_048_576), 11), Style(.text)))
        }
        lines.append(("* per role: √(Σ‖W−Ŵ‖²/Σ‖W‖²)", Style(.muted)))
        lines.append(("", Style(.text)))
        lines.append(("+/- bits of this matrix · a: its bits for all matrices", Style(.muted)))
        lines.append(("g group · x outliers · b budget in bits per weight", Style(.muted)))
        for (i, (text, style)) in lines.enumerated() where i < inner.height {
            buf.put(text, x: inner.x + 1, y: inner.y + i, style: style, maxWidth: inner.width - 1)
        }
    }

    // MARK: overlays

    static func drawHelp(_ state: ExplorerState, _ buf: inout ScreenBuffer) {
        let bindings = KeyMap.bindings
        let legend = "cells: … computing · \(stoppedMarker) stopped, R restarts · — cannot be known"
        let rowsAvailable = max(1, buf.height - 5)
        let columns = (bindings.count + rowsAvailable - 1) / rowsAvailable
        let rows = (bindings.count + columns - 1) / columns
        let width = min(buf.width - 2, max(columns * 60, legend.unicodeScalars.count + 4))
        let rect = Rect(x: max(0, (buf.width - width) / 2), y: max(0, (buf.height - rows - 3) / 2), width: width, height: rows + 3)
        buf.fill(rect, with: Cell(" ", Style(.text)))
        buf.box(rect, title: "Keys (Esc or ? closes)")
        let colWidth = (rect.width - 2) / max(1, columns)
        let keyWidth = (bindings.map { $0.keyLabel.unicodeScalars.count }.max() ?? 8) + 1
        for (n, b) in bindings.enumerated() {
            let col = n / rows, row = n % rows
            let x = rect.x + 1 + col * colWidth
            let enabled = b.isEnabled(state)
            buf.put(pad(b.keyLabel, keyWidth, left: true), x: x + 1, y: rect.y + 1 + row, style: Style(.accent, bold: true, dim: !enabled), maxWidth: colWidth - 1)
            buf.put(b.help, x: x + 1 + keyWidth, y: rect.y + 1 + row, style: Style(enabled ? .text : .muted), maxWidth: max(0, colWidth - keyWidth - 2))
        }
        buf.put(legend, x: rect.x + 2, y: rect.y + 1 + rows, style: Style(.muted), maxWidth: max(0, rect.width - 4))
    }

    static func drawDialog(title: String, lines: [String], _ buf: inout ScreenBuffer) {
        let width = min(buf.width - 2, max(40, (lines.map { $0.unicodeScalars.count }.max() ?? 0) + 4, title.unicodeScalars.count + 6))
        let rect = Rect(x: max(0, (buf.width - width) / 2), y: max(0, (buf.height - lines.count - 2) / 2), width: width, height: lines.count + 2)
        buf.fill(rect, with: Cell(" ", Style(.text)))
        buf.box(rect, title: title, style: Style(.accent))
        for (i, line) in lines.enumerated() {
            buf.put(line, x: rect.x + 2, y: rect.y + 1 + i, style: Style(.text, bold: i == 0), maxWidth: rect.width - 4)
        }
    }
}
