package actuator

// Annotations coalmine keeps on the Deployment it drives (the canary's; for the rollout strategy,
// the one Deployment), so that any process that restarts reads them back and carries on.
const (
	// AnnotationProgress holds the analyzer's record of the canary: step, verdicts, start time,
	// the action in flight. Its format belongs to the analyzer.
	AnnotationProgress = "coalmine.dev/progress"
	// AnnotationBaselineReplicas is the baseline's replica count when the canary started; steps
	// given as percentages and the promotion are computed from it.
	AnnotationBaselineReplicas = "coalmine.dev/baseline-replicas"
	// AnnotationLastGoodRevision is the Deployment revision that last passed analysis; a rollout
	// rollback undoes to it.
	AnnotationLastGoodRevision = "coalmine.dev/last-good-revision"
	// AnnotationOriginalStrategy is the rollout's update strategy before coalmine changed it.
	AnnotationOriginalStrategy = "coalmine.dev/original-strategy"
	// AnnotationServiceVersion is the version a bluegreen Service selected before the switch.
	AnnotationServiceVersion = "coalmine.dev/service-version"

	// revisionAnnotation is the Deployment controller's own revision number.
	revisionAnnotation = "deployment.kubernetes.io/revision"
)
