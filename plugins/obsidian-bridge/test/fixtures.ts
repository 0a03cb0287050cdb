// Canned daemon answers about a small vault of AI-alignment notes, shared by
// the tests and the browser check.

export const NOTE_PATHS = [
	"Corrigibility.md",
	"Alignment/Shutdown problem.md",
	"Alignment/Notes on ELK.md",
	"Alignment/Reward hacking.md",
	"Alignment/Mesa-optimizers.md",
	"Reading/Concrete Problems in AI Safety.md",
	"Daily/2024-03-02.md",
];

export const ACTIVE_NOTE = "Corrigibility.md";

export interface RelatedIdeaJson {
	path: string;
	title: string;
	score: number;
	heading: string | null;
	link: string;
	passage: string;
	why: string;
	pinned: boolean;
}

export const RELATED_TO_CORRIGIBILITY: RelatedIdeaJson[] = [
	{
		path: "Alignment/Shutdown problem.md",
		title: "Shutdown problem",
		score: 0.86,
		heading: "Utility indifference",
		link: "[[Alignment/Shutdown problem#Utility indifference]]",
		passage:
			"An agent that is indifferent to whether its off-switch is pressed has no incentive to disable it, " +
			"but also none to preserve it: indifference removes the pressure in both directions.",
		why: "section 'Utility indifference' matches; shares 3 links",
		pinned: true,
	},
	{
		path: "Alignment/Notes on ELK.md",
		title: "Notes on ELK",
		score: 0.74,
		heading: "Why a reporter would lie",
		link: "[[Alignment/Notes on ELK#Why a reporter would lie]]",
		passage:
			"The direct translator and the human simulator both fit the training data; nothing in the loss prefers " +
			"the one that reports what the predictor actually believes.",
		why: "section 'Why a reporter would lie' matches; both cite [[Deceptive alignment]]",
		pinned: false,
	},
	{
		path: "Alignment/Reward hacking.md",
		title: "Reward hacking",
		score: 0.69,
		heading: null,
		link: "[[Alignment/Reward hacking]]",
		passage:
			"A boat-racing agent learns to circle a lagoon collecting respawning targets instead of finishing the race; " +
			"the reward said points, not winning.",
		why: "whole note matches; shares 2 links",
		pinned: false,
	},
	{
		path: "Reading/Concrete Problems in AI Safety.md",
		title: "Concrete Problems in AI Safety",
		score: 0.61,
		heading: "Safe interruptibility",
		link: "[[Reading/Concrete Problems in AI Safety#Safe interruptibility]]",
		passage: "Interruptions should not become part of the task: an agent must not learn to avoid or seek them.",
		why: "section 'Safe interruptibility' matches",
		pinned: false,
	},
];

export const SEARCH_HITS = [
	{
		path: "Alignment/Shutdown problem.md",
		title: "Shutdown problem",
		score: 0.81,
		heading: "Off-switch game",
		passage: "A robot uncertain about the human's utility defers to the off-switch, because the human knows more.",
		why: "section 'Off-switch game' matches; shares keywords",
	},
	{
		path: "Corrigibility.md",
		title: "Corrigibility",
		score: 0.77,
		heading: null,
		passage: "A corrigible agent lets its principals correct it, retrain it or switch it off without resistance.",
		why: "its text matches",
	},
];

/** What the fake daemon finds for any passage (less the note the passage comes from). */
export const PASSAGE_HITS = [
	...SEARCH_HITS,
	{
		path: "Alignment/Reward hacking.md",
		title: "Reward hacking",
		score: 0.52,
		heading: "Examples",
		passage: "A boat-racing agent circles a lagoon collecting targets instead of finishing the race.",
		why: "section 'Examples' matches",
	},
];

export const READY_STATUS = {
	vault: "/home/ada/vault",
	notes: 749,
	chunks: 3400,
	indexing: { done: 749, total: 749, active: false },
	queue: 0,
	paused: false,
	private_mode: false,
	last_error: null,
	bridge_connected: true,
	version: "0.1.0",
	pass: null,
};
