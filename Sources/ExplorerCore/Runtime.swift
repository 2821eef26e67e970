import Configuration
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
    /// The model and calibration identity configs record: given, or made on the first export/open
    /// from the jobs' session (else the model at the state's path); see ``ExplorerConfigIdentity``.
    public private(set) var configIdentity: ExplorerConfigIdentity?

    /// A runtime over `state`.
    public init(state: ExplorerState, jobs: ExplorerJobs?, configIdentity: ExplorerConfigIdentity? = nil) {
        self.state = state
        self.jobs = jobs
        self.configIdentity = configIdentity
    }

    /// The identity configs record (hashes a model file once, through the on-disk hash cache).
    public func identity() throws -> ExplorerConfigIdentity {
        if let configIdentity { return configIdentity }
        let session = try jobs?.session ?? ModelSession(path: state.resources.info.path)
        let made = try ExplorerConfigIdentity(session: session, calibration: jobs?.calibration, reference: jobs?.calibrationReference)
        configIdentity = made
        return made
    }

    /// Reads a config file into settings for this model (``ExplorerConfigFile/read(path:state:identity:)``).
    /// - Throws: ``Configuration/ConfigError`` naming the file and the exact entry.
    public func readConfig(path: String) throws -> (settings: ExplorerSettings, notes: [String]) {
        try ExplorerConfigFile.read(path: path, state: state, identity: try identity())
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

    /// Starts the initial error-model job (the table shows "…" until it is done), and hashes a model
    /// file for configs on a background thread (into the on-disk cache), so the first `e` or `o` does
    /// not read the whole model on the UI thread (seconds for a multi-GB model).
    public func start() {
        guard let jobs else { return }
        if !jobs.session.isBundle {
            let path = jobs.session.path
            Thread.detachNewThread { _ = try? ModelHashCache.sha256(ofFile: path) }
        }
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
                try ExplorerConfigFile.write(settings, state: state, identity: try identity(), to: path, overwrite: overwrite)
                send(.exported(path: path))
            } catch {
                send(.status("export failed: " + ExplorerConfigFile.statusLine(error)))
            }
        case .openConfig(let path):
            do {
                let (settings, notes) = try readConfig(path: path)
                send(.configOpened(settings, path: path))
                if !notes.isEmpty { send(.status("opened \(path); " + notes.joined(separator: "; "))) }
            } catch {
                send(.status(ExplorerConfigFile.statusLine(error)))
            }
        case .quit:
            runner.cancelAll(wait: 1)
        }
    }
}
