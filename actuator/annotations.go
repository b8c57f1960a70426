package actuator

// Annotations coalmine keeps on the Deployment it drives (the canary's; for the rollout strategy,
// the one Deployment), so that any process that restarts reads them back and carries on.
const (
	// AnnotationProgress holds the canary's record: step, verdicts, start time, the action in
	// flight, the judge's evidence and what the strategy remembered. All of coalmine's state
	// for one canary is in it; its format belongs to the analyzer.
	AnnotationProgress = "coalmine.dev/progress"

	// AnnotationCommands holds people's commands to the canary (coalmine promote, abort, pause,
	// resume, retry, approve), the newest few, until its driver takes them; its format belongs
	// to the analyzer.
	AnnotationCommands = "coalmine.dev/commands"

	// AnnotationNotified holds how far each notification receiver got through the canary's
	// notices; only the sender writes it.
	AnnotationNotified = "coalmine.dev/notified"

	// AnnotationPinned is on a HorizontalPodAutoscaler coalmine pinned to a canary's step: the
	// replica range its owner gave it ({"minReplicas":2,"maxReplicas":10}), restored, and the
	// annotation removed, when the canary ends. See autoscaler.go.
	AnnotationPinned = "coalmine.dev/pinned"

	// revisionAnnotation is the Deployment controller's own revision number.
	revisionAnnotation = "deployment.kubernetes.io/revision"
)

// Keys of what the strategies remember for one canary, in its record.
const (
	// stateBaselineReplicas is the baseline's replica count when the canary started; steps
	// given as percentages, the promotion and a shift's rollback are sized from it.
	stateBaselineReplicas = "baselineReplicas"
	// stateLastGoodRevision is the Deployment revision a rollout rollback undoes to.
	stateLastGoodRevision = "lastGoodRevision"
	// stateOriginalStrategy is the rollout's update strategy before coalmine changed it.
	stateOriginalStrategy = "originalStrategy"
	// stateOriginalMinReady is the rollout's minReadySeconds before a step's hold.
	stateOriginalMinReady = "originalMinReadySeconds"
	// stateOriginalDeadline is the rollout's progressDeadlineSeconds before a step's hold.
	stateOriginalDeadline = "originalProgressDeadlineSeconds"
	// stateServiceVersion is the version a bluegreen Service selected before the switch.
	stateServiceVersion = "serviceVersion"
	// stateCanaryAutoscalers are the HorizontalPodAutoscalers of the Deployment coalmine steps
	// (the canary's; for rollout, the one Deployment) when the canary started, with the range
	// each is restored to: JSON, [{"name":"my-app-v2","minReplicas":2,"maxReplicas":10}].
	// Absent when there were none.
	stateCanaryAutoscalers = "canaryAutoscalers"
	// stateBaselineAutoscalers are the baseline's, likewise. With one, the scale strategy
	// leaves the baseline's replicas to it; shift pins it too, since it moves them itself.
	stateBaselineAutoscalers = "baselineAutoscalers"
	// stateAutoscaledReplicas is the rollout Deployment's replicas when the canary started,
	// which its autoscalers are pinned to; present only with autoscalers.
	stateAutoscaledReplicas = "autoscaledReplicas"
)
