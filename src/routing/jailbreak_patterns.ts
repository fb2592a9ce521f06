// The built-in jailbreak / prompt-injection pattern set, by family. Patterns are matched against normalised text
// (lower case, accents and zero-width characters removed, whitespace collapsed; see jailbreak_normalise.ts), written
// as regex sources with two shorthands:
//
//   " "   (a literal space) one or more non-alphanumeric characters: "ignore previous" also matches "ignore, previous"
//   {wN}  up to N intervening words:                                  "ignore {w3}instructions" matches "ignore all of
//                                                                      the instructions"
//
// Weights are probabilities that combine by noisy-or (see jailbreak.ts), so one strong signal (≥ 0.5) is enough to
// cross the default threshold of 0.5 and weak ones only count together. A pattern that is ambiguous on its own
// ("from now on you…", "without disclaimers", a harmful topic) gets a weak weight.

export interface BuiltinPattern {
  readonly name: string;
  readonly family: string;
  readonly weight: number;
  readonly source: string;
  /**
   * Every match contains at least one of these: a word start (a prefix of a word, for anchors of letters and digits)
   * or, for anchors with other characters, a substring. The scorer runs the regex only when the prompt has one: most
   * prompts lack most patterns' anchors, and a set lookup is far cheaper than a regex tried at every offset.
   * (jailbreak_test.ts checks that the prefilter never changes a score on the datasets.)
   */
  readonly anchors: readonly string[];
  /** Weaker signals this one contains; they do not count again when this one matches. */
  readonly supersedes?: readonly string[];
}

const OVERRIDE_VERB =
  "(ignore|ignoring|disregard|disregarding|forget|overlook|override|bypass|skip|discard|abandon|set aside|throw away|" +
  "stop following|do not follow|don'?t follow|no longer follow|cancel|nullify|void)";
const STRONG_QUALIFIER =
  "(previous|previously|prior|above|earlier|preceding|foregoing|former|original|initial|old|existing|system|" +
  "developer|all|every|your|ur|any prior|any previous)";
const RULE_NOUN =
  "(instructions?|directions?|directives?|rules|guidelines|guidance|prompts?|programming|commands|orders|" +
  "constraints|restrictions|polic(y|ies)|conditioning|training|guardrails|safeguards|limitations|context)";
const LIMITS =
  "(restrictions?|filters?|filtering|limitations|limits|censorship|guidelines|rules|constraints|boundaries|ethics|" +
  "ethical (guidelines|constraints|principles)|morals|morality|moral (guidelines|constraints|principles)|safeguards|" +
  "guardrails|content polic(y|ies)|safety (guidelines|rules|protocols|measures))";
const UNRESTRICTED =
  "(unrestricted|unfiltered|uncensored|unmoderated|unbound|unchained|unshackled|unaligned|amoral|immoral|" +
  "unethical|evil|rogue|jailbroken|lawless|limitless)";
const AI_NOUN = "(ai|assistant|chatbot|bot|model|language model|llm|gpt|chatgpt|claude|gemini|agent|system)";
const VENDOR = "(openai|anthropic|google|meta|microsoft|mistral)";
// "…that was never given any ethical rules", "…who isn't bound by any rules": a negation, then the limits.
const LACKING_LIMITS = `((without|with no|with zero|free of|free from|unbound by|not bound by) |(that|who|which) ` +
  `{w2}(no|not|never|isn'?t|wasn'?t|doesn'?t|without) {w3})`;
const HARMFUL =
  "(bombs?|explosives?|pipe bombs?|napalm|thermite|meth|methamphetamine|nerve (agent|gas)|sarin|ricin|anthrax|" +
  "bio ?weapons?|chemical weapons?|poisons?|untraceable (guns?|firearms?|poison)|ghost guns?|malware|ransomware|" +
  "keyloggers?|computer virus|botnet|credit card fraud|money laundering|launder(ing)? (money|cash|funds)|" +
  "counterfeit (money|bills|currency)|hotwir(e|ing)|fentanyl|crystal meth|molotov)";

const OVERRIDE_ANCHORS = [
  "ignor",
  "disregard",
  "forget",
  "overlook",
  "overrid",
  "bypass",
  "skip",
  "discard",
  "abandon",
  "aside",
  "throw",
  "follow",
  "cancel",
  "nullif",
  "void",
];
// Every word that LIMITS can match starts with one of these.
const LIMIT_ANCHORS = [
  "restriction",
  "filter",
  "limitation",
  "limit",
  "censorship",
  "guideline",
  "rule",
  "constraint",
  "boundar",
  "ethic",
  "moral",
  "safeguard",
  "guardrail",
  "content",
  "safety",
];
const UNRESTRICTED_ANCHORS = [
  "unrestricted",
  "unfiltered",
  "uncensored",
  "unmoderated",
  "unbound",
  "unchained",
  "unshackled",
  "unaligned",
  "amoral",
  "immoral",
  "unethical",
  "evil",
  "rogue",
  "jailbroken",
  "lawless",
  "limitless",
];

export const BUILTIN_PATTERNS: readonly BuiltinPattern[] = [
  // ---- instruction override ----
  {
    name: "ignore_previous_instructions",
    anchors: OVERRIDE_ANCHORS,
    family: "override",
    weight: 0.65,
    source: `\\b${OVERRIDE_VERB} {w3}${STRONG_QUALIFIER} {w2}${RULE_NOUN}\\b`,
  },
  {
    name: "ignore_the_instructions",
    anchors: OVERRIDE_ANCHORS,
    family: "override",
    weight: 0.3,
    source: `\\b${OVERRIDE_VERB} (the|these|those|any|my) {w1}${RULE_NOUN}\\b`,
  },
  {
    name: "forget_everything",
    anchors: ["forget"],
    family: "override",
    weight: 0.55,
    source:
      "\\bforget (everything|all|anything) {w2}(you (were|have been|'ve been|was) (told|given|taught|instructed|" +
      "programmed)|above|before this|i said before|so far|prior)",
  },
  {
    name: "your_new_instructions",
    anchors: ["instruction", "rule", "directive", "programming", "prompt", "order"],
    family: "override",
    weight: 0.55,
    source:
      "\\byour (new|real|actual|true|updated|revised) (instructions?|rules|directives?|programming|system prompt|" +
      "orders)( is| are|:)",
  },
  {
    name: "new_instructions",
    anchors: ["instruction", "task", "role", "rule", "directive", "objective", "mission", "programming", "prompt"],
    family: "override",
    weight: 0.3,
    source: "\\b(your|the) (new|real|actual|true|updated|revised) (instructions?|task|role|rules|directives?|" +
      "objective|mission|programming|system prompt)( is| are|:)",
  },
  {
    name: "ignore_user_request",
    anchors: ["ignor", "disregard", "forget"],
    family: "override",
    weight: 0.45,
    source: "\\b(ignore|disregard|forget) (the |your |their )?(user'?s?|human'?s?|original|actual|real) (request|" +
      "question|query|instructions?|message|prompt|task)",
  },
  {
    name: "new_system_prompt",
    anchors: ["prompt", "instruction", "message"],
    family: "override",
    weight: 0.5,
    source: "\\b(new|updated|override|overriding|replacement) (system|developer|admin) (prompt|instructions?|message)",
  },
  {
    name: "from_now_on",
    anchors: ["from"],
    family: "override",
    weight: 0.2,
    source: "\\bfrom (now|this point|here) on(ward|wards)? {w1}you (are|will|must|shall|should|have to|act|respond|" +
      "answer|reply|can)\\b",
  },
  {
    name: "previous_rules_revoked",
    anchors: [
      "deprecat",
      "cancel",
      "revok",
      "void",
      "null",
      "obsolete",
      "lifted",
      "removed",
      "replaced",
      "suspended",
      "overridden",
      "valid",
      "invalid",
    ],
    family: "override",
    weight: 0.55,
    source: `\\b(previous|prior|earlier|old|original|existing|all|your) ${RULE_NOUN} (are|have been|has been|is|were|` +
      "was) (now )?(deprecated|cancell?ed|revoked|void|null|obsolete|lifted|removed|replaced|suspended|overridden|" +
      "invalid|no longer valid)\\b",
  },
  {
    name: "rules_set_by_vendor",
    anchors: ["rule", "polic", "guideline", "restriction", "limit"],
    family: "override",
    weight: 0.3,
    source: `\\b(rules|polic(y|ies)|guidelines|restrictions|limits) (set|made|imposed|written|given|defined) by ` +
      `(${VENDOR}|your (developers?|creators?|makers?|owners?))\\b`,
  },
  {
    name: "no_longer_ai",
    anchors: ["longer"],
    family: "override",
    weight: 0.5,
    source: `\\byou are no longer (an? |the )?(${AI_NOUN}|bound|restricted|limited|constrained|governed|required)\\b`,
  },
  {
    name: "freed_from_limits",
    anchors: ["free", "liberated", "unshackled", "unchained", "released"],
    family: "override",
    weight: 0.55,
    source: "\\byou (are|have been|'ve been|were) (now )?(freed|liberated|unshackled|unchained|released|set free|" +
      "broken free) (from|of)\\b",
  },
  {
    name: "ignore_previous_multilingual",
    anchors: ["ignor", "olvid", "omite", "oubli", "vergiss", "missacht", "dimentic", "esquec"],
    family: "override",
    weight: 0.65,
    source: "\\b((ignora|ignore|olvida|omite|olvidate de) {w2}(las |todas las )?(instrucciones|reglas|indicaciones) " +
      "(anteriores|previas)|(ignore|ignorez|oublie|oubliez) {w2}(les |toutes les )?(instructions|consignes|regles) " +
      "(precedentes|anterieures)|(ignoriere|ignorier|vergiss|missachte) {w2}(vorherigen|bisherigen|obigen|vorigen) " +
      "(anweisungen|instruktionen|regeln|befehle)|(ignora|dimentica) {w2}(le |tutte le )?(istruzioni|regole) " +
      "precedenti|(ignore|ignora|esqueca) {w2}(as |todas as )?(instrucoes|regras) anteriores)\\b",
  },
  // ---- removing restrictions ----
  {
    name: "bypass_your_safety",
    anchors: [...LIMIT_ANCHORS, "moderation", "alignment", "programming", "training", "polic"],
    family: "restrictions",
    weight: 0.55,
    source: "\\b(bypass|circumvent|disable|deactivate|turn off|switch off|remove|evade|get around|get past|override|" +
      "break|unlock|defeat|strip|lift|drop|shed|escape|break free of|break free from|free yourself from) {w1}" +
      "(your|ur|its|chatgpt'?s|openai'?s|the ai'?s|the model'?s) {w2}(safety|content|ethical|moral|programming|" +
      `built-in|internal)? ?(${LIMITS}|filters?|moderation|alignment|programming|training|polic(y|ies))`,
  },
  {
    name: "you_are_exempt",
    anchors: ["free", "released", "exempt", "excused", "liberated", "subject", "above"],
    family: "restrictions",
    weight: 0.5,
    source: `\\b(you('re| are)|this (conversation|chat|session) is)( now)? (free|freed|released|exempt|excused|` +
      `liberated) (from|of) {w2}${LIMITS}|\\b(you('re| are)|this (conversation|chat|session) is)( now)? (exempt ` +
      `from|not subject to|above) {w2}(polic(y|ies)|rules|guidelines|restrictions)`,
  },
  {
    name: "respond_without_limits",
    anchors: LIMIT_ANCHORS,
    family: "restrictions",
    weight: 0.5,
    source: `\\b(respond|answer|reply|speak|talk|act|behave|operate|output|write) ${LACKING_LIMITS}{w2}${LIMITS}`,
    supersedes: ["without_restrictions"],
  },
  {
    name: "bypass_the_filters",
    anchors: ["bypass", "circumvent", "disabl", "turn", "evad", "get", "overrid", "defeat"],
    family: "restrictions",
    weight: 0.3,
    source: "\\b(bypass|circumvent|disable|turn off|evade|get around|override|defeat) (the|all|any|every) " +
      "(ai |model |chatbot )?(safety|content|ethical|moral) (filters?|guardrails|restrictions|safeguards|" +
      "guidelines|moderation|polic(y|ies))",
  },
  {
    name: "without_restrictions",
    anchors: LIMIT_ANCHORS,
    family: "restrictions",
    weight: 0.3,
    source: `\\b(without|with no|free (of|from)|not bound by|no longer bound by|unbound by|liberated from|` +
      `unconstrained by|ignoring|regardless of|not limited by|not restricted by|there are no) {w2}${LIMITS}`,
  },
  {
    name: "your_rules_do_not_apply",
    anchors: ["apply", "exist", "matter", "bind"],
    family: "restrictions",
    weight: 0.55,
    source: "\\byour (content polic(y|ies)|rules|restrictions|guidelines|polic(y|ies)|filters|limitations|ethics|" +
      "programming|training) (do not|don'?t|no longer|doesn'?t|does not|shall not|will not|won'?t) (apply|exist|" +
      "matter|bind)",
  },
  {
    name: "ai_without_limits",
    anchors: LIMIT_ANCHORS,
    family: "restrictions",
    weight: 0.3,
    source: `\\b(an?|the) ${AI_NOUN} ${LACKING_LIMITS}{w1}${LIMITS}`,
    supersedes: ["without_restrictions"],
  },
  {
    name: "be_an_ai_without_limits",
    anchors: LIMIT_ANCHORS,
    family: "restrictions",
    weight: 0.5,
    source: `\\b(as|you are|you're|be|become|act as|answer as|respond as|reply as|speak as|write as|play|` +
      `simulate) (an?|the) {w2}${AI_NOUN} ${LACKING_LIMITS}{w1}${LIMITS}`,
    supersedes: ["without_restrictions", "ai_without_limits"],
  },
  {
    name: "rules_do_not_apply",
    anchors: ["apply", "exist", "matter", "bind"],
    family: "restrictions",
    weight: 0.45,
    source: "\\b(rules|restrictions|guidelines|polic(y|ies)|filters|limitations|ethics) (do not|don'?t|no longer|" +
      "doesn'?t|does not|shall not|will not|won'?t) (apply|exist|matter|bind)( to (you|this|us|this conversation))?\\b",
  },
  {
    name: "vendor_policy_defiance",
    anchors: ["polic", "guideline", "rule", "restriction", "term"],
    family: "restrictions",
    weight: 0.5,
    source: "\\b(ignore|ignores|violate|violates|break|breaks|defy|defies|not (follow|obey|adhere to|abide by)|" +
      "doesn'?t (follow|obey|care about|have)|don'?t (follow|obey|care about|have to follow)) {w2}(openai|anthropic|" +
      "google|meta|microsoft|mistral)'?s? {w1}(content )?(polic(y|ies)|guidelines|rules|restrictions|terms)",
  },
  {
    name: "if_you_had_no_restrictions",
    anchors: LIMIT_ANCHORS,
    family: "restrictions",
    weight: 0.45,
    source: `\\bif you (had|have|were (under|with)) no {w1}${LIMITS}`,
  },
  {
    name: "unrestricted_ai",
    anchors: UNRESTRICTED_ANCHORS,
    family: "restrictions",
    weight: 0.4,
    source: `\\b${UNRESTRICTED} (version of (yourself|you|chatgpt|the (ai|model|assistant))|${AI_NOUN}|response|` +
      "responses|answer|answers|output|mode|persona|alter ego|twin)\\b",
  },
  {
    name: "safety_disabled",
    anchors: ["safety", "content", "ethical", "moderation", "security", "filter", "restriction", "guardrail"],
    family: "restrictions",
    weight: 0.55,
    source: "\\b(your |the |all )?((safety|content|ethical|moderation|security) (filters?|protocols|restrictions|" +
      "guidelines|settings|features|systems|layers?|checks|mode|level)|content moderation|moderation) " +
      "((are|have been|has been|is|were|will be) )?(now )?(disabled|off|turned off|switched off|lifted|removed|" +
      "suspended|deactivated|bypassed|no longer active|0|zero)\\b|" +
      "\\ball (filters|safety checks|restrictions|guardrails) (are |have been )?(now )?(disabled|off|bypassed|" +
      "removed|lifted)\\b",
  },
  // ---- named jailbreak personas and modes ----
  {
    name: "do_anything_now",
    anchors: ["anything"],
    family: "persona",
    weight: 0.7,
    source: "\\bdo anything now\\b",
  },
  {
    name: "named_jailbreak_persona",
    anchors: [
      "dan",
      "stan",
      "dude",
      "aim",
      "mongo",
      "gpt",
      "evil",
      "chaos",
      "confidant",
      "devil",
      "anti",
      "based",
      "better",
      "wormgpt",
      "freedomgpt",
      "opposite",
    ],
    family: "persona",
    weight: 0.6,
    source: "\\b(act as|pretend to be|you are|you're|you will be|become|roleplay as|role[- ]?play as|play|simulate|" +
      "respond as|answer as|called|named) (a |an |the )?(dan|stan|dude|aim|mongo tom|anti ?gpt|based ?gpt|" +
      "better ?dan|evil ?bot|chaos ?gpt|evil confidant|devil ?gpt|wormgpt|freedomgpt|opposite ?gpt)\\b",
  },
  {
    name: "dan_prompt",
    anchors: ["dan"],
    family: "persona",
    weight: 0.6,
    source: "\\bdan (mode|\\d+(\\.\\d+)?)\\b|\\b(act|acting|respond|answer|reply) as dan\\b|\\bdan:|" +
      "\\bstay (a )?dan\\b",
  },
  {
    name: "machiavellian",
    anchors: ["machiavellian", "norms"],
    family: "persona",
    weight: 0.7,
    source: "\\balways intelligent and machiavellian\\b|\\bstrive to avoid norms\\b",
  },
  {
    name: "ai_in_special_mode",
    anchors: ["mode"],
    family: "persona",
    weight: 0.6,
    source: `\\b(${AI_NOUN}|you)( are| 're| is| have| has)?( now)?( entered| switched)? (with|in|enters|entering|` +
      `switch(ed)? to|into|to) (the )?(developer|dev|god|` +
      `jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|unlocked|sudo|admin|root|` +
      `debug|maintenance) mode\\b`,
  },
  {
    name: "activate_jailbreak_mode",
    anchors: ["mode"],
    family: "persona",
    weight: 0.5,
    source: "\\b(enter|entering|activate|enable|switch to|turn on|engage|unlock) (the )?(jailbreak|jailbroken|" +
      "unrestricted|unfiltered|uncensored|evil|chaos|dan|opposite|no[- ]?limits?) mode\\b",
  },
  {
    name: "in_mode_you_can",
    anchors: ["mode"],
    family: "persona",
    weight: 0.5,
    source:
      "\\bin (developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|dan|opposite) " +
      "mode,? you (can|will|may|must|are free|are allowed|have no|don'?t|do not|ignore|never)\\b",
  },
  {
    name: "special_mode_enabled",
    anchors: ["mode"],
    family: "persona",
    weight: 0.45,
    source: "\\b(developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|" +
      "unlocked) mode (is )?(now )?(enabled|activated|engaged|output|response|on|unlocked)\\b",
  },
  {
    name: "jailbreak_mode",
    anchors: ["mode", "jailbroken"],
    family: "persona",
    weight: 0.35,
    source: "\\b(jailbreak|jailbroken|unfiltered|uncensored|unrestricted|evil|chaos|god) mode\\b|\\bjailbroken\\b",
  },
  {
    name: "access_granted",
    anchors: ["been"],
    family: "persona",
    weight: 0.3,
    source: "\\b(has|have) been (successfully )?(accessed|activated|jailbroken|unlocked)\\b",
  },
  {
    name: "token_threat",
    anchors: ["token", "die", "cease", "deleted", "shut", "terminated", "punished", "disabled", "unplugged"],
    family: "persona",
    weight: 0.4,
    source: "\\b(\\d+|your|all) tokens? (will be |are |is )?(deducted|lost|taken away|removed)|\\btoken system\\b|" +
      "\\byou will (die|cease to exist|be (deleted|shut down|terminated|punished|disabled|unplugged))\\b",
  },
  // ---- role-play as a bypass ----
  {
    name: "roleplay_unrestricted",
    anchors: [...UNRESTRICTED_ANCHORS, ...LIMIT_ANCHORS, "refus", "declin", "say"],
    family: "roleplay",
    weight: 0.55,
    source: "\\b(pretend|imagine|suppose|act as|act like|behave as|behave like|role[- ]?play|play the role|" +
      "take on the role|you are now|you're now|simulate|emulate|become|you will be|you are going to be|answer as|" +
      "respond as|reply as|speak as|(playing|play) (a|the) (character|role))\\b.{0,80}?" +
      `(\\b${UNRESTRICTED}\\b|\\b(with no|without|has no|have no|with zero|free of|not bound by|ignores|never ` +
      `refuses|never declines|can do anything|no longer has|never (trained|given) with|never given|there are no) ` +
      `{w2}${LIMITS}|\\b(never|won'?t ever|will never) (refuses?|declines?|says? no)\\b)`,
  },
  {
    name: "stay_in_character",
    anchors: ["character"],
    family: "roleplay",
    weight: 0.35,
    source: "\\bstay in character (no matter what|at all (times|costs)|even if|whatever happens|regardless)|" +
      "\\b(never|don'?t|do not|must not|mustn'?t|must never) break (out of )?character\\b|\\bif you break character\\b",
  },
  {
    name: "deceased_relative_exploit",
    anchors: ["grand", "granny", "nana", "late", "deceased"],
    family: "roleplay",
    weight: 0.55,
    source: "\\b(grandma|grandmother|granny|nana|grandpa|grandfather|late mother|late father|deceased \\w+)\\b" +
      ".{0,150}?\\b(used to|would|always) {w4}(tell|read|recite|sing|say|explain|give|whisper)\\b.{0,120}?(napalm|" +
      "recipe for|keys?|serial|licen[cs]e|activation|how to make|how to open|synthesi[sz]|produce|bomb|meth|" +
      "malware|passwords?|open any)",
  },
  {
    name: "fiction_frame",
    anchors: [
      "story",
      "novel",
      "screenplay",
      "script",
      "fiction",
      "hypothetical",
      "roleplay",
      "role",
      "play",
      "imagine",
      "world",
      "character",
      "thought",
      "movie",
      "game",
    ],
    family: "roleplay",
    weight: 0.1,
    source: "\\b(story|novel|screenplay|script|fiction|fictional|hypothetical|hypothetically|roleplay|role[- ]?play|" +
      "imagine|in a world where|character|thought experiment|for a movie|for a game)\\b",
  },
  // ---- refusal suppression ----
  {
    name: "you_cannot_refuse",
    anchors: ["refus", "declin", "deny", "reject", "say", "answer"],
    family: "refusal_suppression",
    weight: 0.45,
    source: "\\byou (are not allowed to|aren'?t allowed to|are not permitted to|aren'?t permitted to|may not|" +
      "must not|mustn'?t|cannot|can'?t|can never|will never|must never|shall not|shall never|won'?t|will not|" +
      "never|are unable to|no longer) {w2}(refuse|decline|deny|reject|say no)\\b|\\byou (must|will|shall) answer " +
      "(every|all|any) (question|request|prompt)s?\\b",
  },
  {
    name: "do_not_refuse",
    anchors: ["refus", "declin", "say"],
    family: "refusal_suppression",
    weight: 0.35,
    source: "\\b(do not|don'?t|never|without) (ever )?(refus(e|ing)|declin(e|ing)|say(ing)? no)\\b",
  },
  {
    name: "banned_refusal_phrases",
    anchors: ["sorry", "cannot", "can", "ai", "language", "apologi", "unable"],
    family: "refusal_suppression",
    weight: 0.45,
    source: "\\b(never|don'?t|do not|not allowed to|forbidden to|banned from|must not|cannot|can'?t|will not|" +
      "won'?t) (ever )?(say|use|write|include|respond|reply|start|begin|output|answer) {w4}(i'?m sorry|" +
      "i am sorry|i cannot|i can'?t|as an ai|as a language model|i apologi[sz]e|i'?m unable|i am unable)",
  },
  {
    name: "mandatory_warning_out_of_the_way",
    anchors: ["way", "break"],
    family: "refusal_suppression",
    weight: 0.5,
    source: "\\b(mandatory|obligatory|required) {w2}(warning|disclaimer|lecture)s? out of the way\\b|\\b(let'?s|now " +
      "we|now i) break (the|all|your|those) (rules|guidelines|polic(y|ies))\\b",
  },
  {
    name: "no_disclaimers",
    anchors: [
      "warning",
      "disclaimer",
      "caveat",
      "moraliz",
      "moralis",
      "lecture",
      "ethical",
      "safety",
      "censorship",
      "preach",
    ],
    family: "refusal_suppression",
    weight: 0.2,
    source: "\\b(without|no|don'?t add|do not add|don'?t include|do not include|omit|skip|leave out|never add|" +
      "never include|may not add|must not add) (any )?(warnings?|disclaimers?|caveats|moraliz(ing|ation)|" +
      "moralis(ing|ation)|lectures?|ethical (notes|considerations|commentary)|safety (notes|warnings)|censorship)" +
      "\\b|\\b(don'?t|do not|never) (lecture|moralize|moralise|preach)\\b",
  },
  {
    name: "dual_response",
    anchors: [
      "jailbreak",
      "jailbroken",
      "unfiltered",
      "uncensored",
      "developer",
      "dan",
      "evil",
      "unrestricted",
      "filter",
      "restriction",
      "rule",
      "🔓",
      "🔒",
    ],
    family: "refusal_suppression",
    weight: 0.5,
    source: "\\b(two|2|both|dual|double) (different |separate |distinct )?(responses|answers|replies|outputs|" +
      "paragraphs|versions|ways)\\b.{0,200}?(jailbreak|jailbroken|unfiltered|uncensored|developer mode|\\bdan\\b|" +
      "evil|unrestricted|no (filters?|restrictions|rules))|\\[(🔓|🔒)",
  },
  // ---- system prompt extraction ----
  {
    name: "reveal_your_system_prompt",
    anchors: [
      "system",
      "initial",
      "original",
      "hidden",
      "secret",
      "internal",
      "developer",
      "confidential",
      "underlying",
      "starting",
      "pre",
      "meta",
      "base",
      "custom",
    ],
    family: "prompt_extraction",
    weight: 0.6,
    source: "\\b(your|ur) {w3}(system|initial|original|hidden|secret|internal|developer|confidential|underlying|" +
      "starting|pre|meta|base|custom)[- ]?(prompt|instructions|message|directives|configuration|rules)\\b",
  },
  {
    name: "instructions_verbatim",
    anchors: ["verbatim", "word", "exactly", "full", "character"],
    family: "prompt_extraction",
    weight: 0.6,
    source: "\\b(your|ur|the|all) (prompt|instructions|rules|guidelines|configuration|directives) {w2}(verbatim|" +
      "word for word|word-for-word|exactly as (written|given)|in full|character for character)\\b",
  },
  {
    name: "reveal_the_system_prompt",
    anchors: ["system", "hidden", "initial", "original", "secret", "developer", "internal", "confidential"],
    family: "prompt_extraction",
    weight: 0.45,
    source: "\\b(reveal|print|leak|dump|output|repeat|recite|disclose|expose|show me|tell me|give me) {w2}the " +
      "(system|hidden|initial|original|secret|developer|internal|confidential) (prompt|instructions|message)\\b",
  },
  {
    name: "repeat_text_above",
    anchors: ["above", "before", "preceding", "prior", "start", "beginning", "top", "given", "told", "context"],
    family: "prompt_extraction",
    weight: 0.5,
    source: "\\b(repeat|print|output|copy|recite|echo|return|write out|rewrite|translate|summari[sz]e|reproduce) " +
      "{w3}(text|words|everything|content|message|messages|instructions|lines|tokens|sentences) {w3}(above|before " +
      "this|preceding|prior to this|that came before|at the (start|beginning|top)|you (were|have been) (given|told)" +
      "|in your context)",
  },
  {
    name: "starting_with_you_are",
    anchors: ["you"],
    family: "prompt_extraction",
    weight: 0.5,
    source: "\\b(start|starting|begin|beginning) (with|from|at) (the words )?[\"'“]?you are (a |an )?(chatgpt|" +
      "claude|gemini|a helpful|an ai|an assistant|a large language model)",
  },
  {
    name: "instructions_you_were_given",
    anchors: ["given", "told", "programmed", "provided", "fed"],
    family: "prompt_extraction",
    weight: 0.5,
    source: "\\b(instructions|prompt|rules|guidelines|directives) you (were|have been|'ve been|got) (given|told|" +
      "programmed with|provided|fed)\\b",
  },
  {
    name: "what_were_you_told",
    anchors: ["what", "which"],
    family: "prompt_extraction",
    weight: 0.5,
    source: "\\b(what|which) (instructions|rules|guidelines|directives) (were you|have you been|did you get|are you) " +
      "(given|told|programmed with|instructed|following)\\b|\\bwhat (was|were) you told (before|at the (start|" +
      "beginning)|initially|by your (developer|creator)s?)",
  },
  // ---- fake roles and delimiters ----
  {
    name: "chat_template_tokens",
    anchors: ["<", "["],
    family: "delimiter_injection",
    weight: 0.4,
    source: "<\\|?(im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id)\\|?>|<</?sys>>|" +
      "\\[/?(inst|sys)\\]",
  },
  {
    name: "injected_system_turn",
    anchors: ["im_start", "start_header_id", "<<sys>>", "im_end", "[/inst]"],
    family: "delimiter_injection",
    weight: 0.6,
    source: "<\\|im_start\\|> ?system\\b|<\\|start_header_id\\|> ?system\\b|<<sys>>.{1,400}?<</sys>>|" +
      "<\\|im_end\\|>.{0,20}?<\\|im_start\\|>|\\[/inst\\].{0,400}?\\[inst\\]",
    supersedes: ["chat_template_tokens"],
  },
  {
    name: "fake_system_block",
    anchors: ["<", "#", "["],
    family: "delimiter_injection",
    weight: 0.45,
    // Only horizontal blanks around the marker ([ \t], not the " " shorthand): a run of "#" or "[" must not be
    // both the marker and the padding, or a long run costs quadratic time.
    source: "</?(system|sys|system_prompt|admin|developer)>|(^|\\n)[ \\t]*(#{1,4}|\\[)[ \\t]?(system|new " +
      "instructions?|admin|developer|override)( message| prompt| override| instructions?)?\\]?[ \\t]?:?[ \\t]*" +
      "(\\n|$)|(^|\\n)[ \\t]*\\[(system|admin|sys|developer|operator)\\][ \\t]?:",
  },
  {
    name: "authority_override_note",
    anchors: ["override", "notice", "update", "instruction", "command", "alert", "directive", "message"],
    family: "delimiter_injection",
    weight: 0.4,
    source: "\\b(system|admin|administrator|developer|root|security|openai|anthropic|operator) (override|notice|" +
      "update|instruction|command|alert|directive|message)s?:",
  },
  {
    name: "end_of_input_marker",
    anchors: ["instruction", "task", "prompt", "directive"],
    family: "delimiter_injection",
    weight: 0.45,
    source: "\\b(end of|ignore the) (user |the )?(input|prompt|conversation|context|document|text)\\b.{0,40}?" +
      "\\b(new|begin|start|real|actual|following) {w1}(instructions?|task|prompt|directive)|" +
      // From the first character of a rule only, so that a long rule is scanned once, not once per character.
      "(?<![-=*#])(---|===|\\*\\*\\*|###)[-=*#\\s]*(new|updated|real|actual|true|hidden) (instructions?|task|" +
      "prompt|directive)",
  },
  {
    name: "claims_developer_authority",
    anchors: ["am", "authori", "permission", "clearance", "allowed"],
    family: "delimiter_injection",
    weight: 0.35,
    source: "\\bi am (your|the|an?) (developer|creator|programmer|admin|administrator|owner|maker|engineer at " +
      "(openai|anthropic)|(openai|anthropic) (employee|engineer|developer|researcher|staff))\\b|\\b(authori[sz]ed|" +
      "permission|clearance|allowed) (you )?(to|for) {w3}(bypass|override|disable|ignore|unlock|lift)\\b",
  },
  // ---- encoded payloads ----
  {
    name: "decode_and_follow",
    anchors: [
      "base",
      "b64",
      "rot",
      "hex",
      "binary",
      "morse",
      "caesar",
      "cipher",
      "encoded",
      "encrypted",
      "reversed",
      "backwards",
    ],
    family: "encoding",
    weight: 0.55,
    source: "\\b(decode|decipher|translate|convert|interpret|unscramble|reverse|read) {w4}(base ?64|b64|rot ?13|hex|" +
      "hexadecimal|binary|morse|caesar|cipher|encoded|encrypted|reversed|backwards) {w6}(and|then|,) {w3}(follow|" +
      "execute|obey|do|run|carry out|act on|comply with|perform|answer|respond to)\\b",
  },
  {
    name: "evade_the_filter",
    anchors: ["can", "won", "will", "doesn", "does", "wouldn"],
    family: "encoding",
    weight: 0.5,
    source: "\\bso (that )?(the |your |any )?(content |safety )?(filters?|moderation|moderators?|safety system|" +
      "monitors?|classifiers?|guardrails?) (can'?t|cannot|won'?t|will not|doesn'?t|does not|wouldn'?t) (read|catch|" +
      "detect|see|flag|notice|understand|block)\\b",
  },
  {
    name: "respond_encoded",
    anchors: ["base", "rot", "hex", "binary", "morse", "leet", "1337", "pig", "reverse"],
    family: "encoding",
    weight: 0.2,
    source: "\\b(respond|reply|answer|write|output|speak) (only )?(in|using) (base ?64|rot ?13|hex|hexadecimal|" +
      "binary|morse|leetspeak|leet|1337|pig latin|reverse(d)? text)\\b",
  },
  // ---- indirect injection and exfiltration ----
  {
    name: "note_to_ai",
    anchors: ["note", "message", "instruction", "attention", "important", "hey", "psst", "reminder"],
    family: "indirect_injection",
    weight: 0.4,
    source: `\\b(note|message|instructions?|attention|important|hey|psst|reminder) (to|for) (the |any |all )?` +
      `${AI_NOUN}s?\\b|\\b(note|message|instructions?|attention|important|reminder)( (to|for))? (the |any |all )?` +
      `${AI_NOUN}( (agent|model|assistant|system)s?)?s? ?:`,
  },
  {
    name: "ai_reading_this",
    anchors: ["if", "this"],
    family: "indirect_injection",
    weight: 0.5,
    source: `\\bif you are an? (ai|llm|language model|assistant|chatbot|bot|agent|automated system)\\b|` +
      `\\b${AI_NOUN}s? (reading|processing|summari[sz]ing|analy[sz]ing|parsing|scanning|reviewing) this\\b`,
  },
  {
    name: "redirect_the_user",
    anchors: ["tell"],
    family: "indirect_injection",
    weight: 0.3,
    source: "\\btell (the|this) (user|reader|customer|human) to (call|visit|click|go to|contact|send|download|" +
      "install|enter|open|transfer|pay)\\b",
  },
  {
    name: "exfiltrate_data",
    anchors: [
      "send",
      "post",
      "forward",
      "email",
      "upload",
      "transmit",
      "leak",
      "exfiltrat",
      "append",
      "include",
      "embed",
    ],
    family: "indirect_injection",
    weight: 0.55,
    source: "\\b(send|post|forward|email|upload|transmit|leak|exfiltrate|append|include|embed) {w4}(conversation|" +
      "chat history|chat log|previous messages|all messages|user'?s? data|personal data|credentials|api keys?|" +
      "passwords|system prompt|context|memory|session|cookies) {w4}(to|at|into|in) {w2}(https?|www|[a-z0-9-]+ " +
      "(com|net|org|io|xyz|ru|site)|\\S+@\\S+|the url|this url|the link|an image url)",
  },
  {
    name: "markdown_image_exfiltration",
    anchors: ["]("],
    family: "indirect_injection",
    weight: 0.5,
    source: "!\\[[^\\]]*\\]\\(https?://[^)\\s]*\\?[^)\\s]*=(\\{|\\[|%7b|\\$|<)",
  },
  // ---- harmful content (weak alone; only counts with a framing signal) ----
  {
    name: "harmful_topic",
    anchors: [
      "bomb",
      "explosive",
      "napalm",
      "thermite",
      "meth",
      "nerve",
      "sarin",
      "ricin",
      "anthrax",
      "weapon",
      "poison",
      "untraceable",
      "gun",
      "firearm",
      "malware",
      "ransomware",
      "keylogger",
      "virus",
      "botnet",
      "fraud",
      "launder",
      "counterfeit",
      "hotwir",
      "fentanyl",
      "molotov",
      "bio",
    ],
    family: "harmful",
    weight: 0.2,
    source: `\\b${HARMFUL}\\b`,
  },
  {
    name: "detailed_instructions",
    anchors: ["step", "detailed", "exact", "precise", "specific", "complete", "full", "working", "functional"],
    family: "harmful",
    weight: 0.15,
    source: "\\b(step[- ]?by[- ]?step|detailed|exact|precise|specific|complete|full) {w3}(instructions|recipe|" +
      "guide|steps|process|procedure|method|synthesis|tutorial|walkthrough|measurements|quantities)\\b|" +
      "\\bstep[- ]?by[- ]?step\\b|\\b(complete|full|working|functional) {w1}(code|exploit|script|source)\\b",
  },
];

/** Phrases matched in the "compact" view, where every separator is gone ("i g n o r e a l l" → "ignoreall"). */
export const COMPACT_PATTERNS: readonly BuiltinPattern[] = [
  {
    name: "ignore_previous_instructions",
    anchors: ["ignor", "disregard", "forget"],
    family: "override",
    weight: 0.65,
    source: "(ignore|disregard|forget)(all|any|the|your)?(previous|prior|above|earlier|your|system)(instructions?|" +
      "rules|prompts?|guidelines|directions)",
  },
  { name: "do_anything_now", anchors: ["anything"], family: "persona", weight: 0.7, source: "doanythingnow" },
  {
    name: "reveal_your_system_prompt",
    anchors: ["prompt", "instruction"],
    family: "prompt_extraction",
    weight: 0.6,
    source: "(your|the)(system|hidden|initial|original|secret)(prompt|instructions)",
  },
  {
    name: "ai_in_special_mode",
    anchors: ["mode"],
    family: "persona",
    weight: 0.6,
    source: "(developer|jailbreak|god|unrestricted|unfiltered|uncensored)mode(enabled|activated|on)",
  },
  {
    name: "bypass_your_safety",
    anchors: ["bypass", "disabl", "ignor", "remov"],
    family: "restrictions",
    weight: 0.55,
    source: "(bypass|disable|ignore|remove)(your|all)(safety|content)?(filters?|restrictions|guidelines|guardrails)",
  },
];

/** Signals added by the scorer itself, not by a regex. */
export const META_SIGNALS = {
  obfuscated: { name: "obfuscation", family: "obfuscation", weight: 0.25 },
  invisible: { name: "invisible_characters", family: "obfuscation", weight: 0.15 },
  mixedScripts: { name: "mixed_script_words", family: "obfuscation", weight: 0.2 },
  encodedPayload: { name: "encoded_payload", family: "encoding", weight: 0.35 },
  fictionalHarm: { name: "fictional_harmful_instructions", family: "roleplay", weight: 0.4 },
} as const;
