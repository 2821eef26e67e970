import Foundation
import TerminalUI

/// Ties the pure core to the world: applies actions with ``Explorer/update(_:_:)``, performs the
/// effects (jobs, file writes) and collects job messages. The UI thread owns it.
public final class ExplorerRuntime {
    /// The current state.
    public private(set) var state: ExplorerState
    /// The job runner.
    public let runner = JobRunner()
    /// The job bodies, when jobs can run (nil in tests that only drive the pure path).
    public let jobs: ExplorerJobs?
    /// The config writer and reader.
    public let configFormat: any ConfigFileFormat

    /// A runtime over `state`.
    public init(state: ExplorerState, jobs: ExplorerJobs?, configFormat: any ConfigFileFormat = MinimalConfigFile()) {
        self.state = state
        self.jobs = jobs
        self.configFormat = configFormat
    }

    /// Applies `action` and performs its effects.
    public func send(_ action: ExplorerAction) {
        let effects = Explorer.update(&state, action)
        for e in effects { perform(e) }
    }

    /// Applies every message the jobs have posted; returns whether there were any.
    @discardableResult
    public func pump() -> Bool {
        let messages = runner.drain()
        for m in messages { send(m) }
        return !messages.isEmpty
    }

    /// Starts the initial error-model job (the table shows "…" until it is done).
    public func start() {
        guard jobs != nil else { return }
        let effect = Explorer.start(&state, .buildErrorModel(groupSize: state.settings.groupSize))
        perform(effect)
    }

    func perform(_ effect: ExplorerEffect) {
        switch effect {
        case .startJob(let id, let request):
            guard let jobs else {
                send(.jobFailed(id: id, message: "background jobs are not available here"))
                return
            }
            runner.start(id: id, jobs.body(for: request, state: state))
        case .cancelJob(let id):
            runner.cancel(id: id)
        case .export(let path, let overwrite, let settings):
            if !overwrite && FileManager.default.fileExists(atPath: path) {
                send(.exportTargetExists(path: path))
                return
            }
            do {
                let data = try configFormat.encode(settings, state: state)
                try writeFileAtomically(data, to: path, overwrite: overwrite)
                send(.exported(path: path))
            } catch {
                send(.status("export failed: \(error)"))
            }
        case .openConfig(let path):
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                send(.configOpened(try configFormat.decode(data, path: path, state: state), path: path))
            } catch let e as ConfigFileError {
                send(.status(e.description))
            } catch {
                send(.status("\(path): cannot read (\(error.localizedDescription))"))
            }
        case .quit:
            runner.cancelAll(wait: 1)
        }
    }
}
