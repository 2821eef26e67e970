// local placeholder (untracked): main has this target directory uncommitted
