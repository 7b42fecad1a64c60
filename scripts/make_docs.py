"""Generate loadgen/data/docs.txt: the batch-summarization document set (deterministic, no network).

    python scripts/make_docs.py            # rewrite the file
    python scripts/make_docs.py --check    # exit 1 if the committed file differs from a fresh run

Each document is readable prose about one topic, assembled from section templates filled with that
topic's own vocabulary; a fixed seed makes the output byte-identical on every run.
"""

# ruff: noqa: E501  (the templates are prose; wrapping them would only hurt reading)
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "loadgen" / "data" / "docs.txt"
SEED = 20240404
MIN_WORDS, MAX_WORDS = 520, 1000

# name, field, practitioners, (four key practices), (two places), problem, benefit, tool
TOPICS = [
    (
        "urban beekeeping",
        "city agriculture",
        "beekeepers",
        ("hive inspections", "swarm control", "varroa mite counts", "forage mapping"),
        ("Ljubljana", "Toronto"),
        "colony losses over winter",
        "better pollination of city gardens",
        "a simple hive scale",
    ),
    (
        "coral reef restoration",
        "marine ecology",
        "reef scientists",
        ("coral gardening", "larval seeding", "heat-stress monitoring", "herbivore protection"),
        ("the Florida Keys", "Okinawa"),
        "repeated bleaching events",
        "recovering fish nurseries",
        "underwater photo mosaics",
    ),
    (
        "sourdough baking",
        "food craft",
        "bakers",
        ("starter maintenance", "autolyse", "bulk fermentation", "shaping"),
        ("San Francisco", "Copenhagen"),
        "inconsistent rise from day to day",
        "bread that keeps for days",
        "a kitchen thermometer",
    ),
    (
        "railway signalling",
        "transport engineering",
        "signal engineers",
        ("block sections", "interlocking logic", "axle counters", "train protection"),
        ("Zurich", "Osaka"),
        "trains bunching on busy lines",
        "more trains per hour on the same track",
        "a track circuit tester",
    ),
    (
        "wastewater treatment",
        "public health engineering",
        "plant operators",
        ("primary settling", "activated sludge", "nutrient removal", "sludge digestion"),
        ("Singapore", "Milwaukee"),
        "storm overflows after heavy rain",
        "cleaner rivers downstream",
        "online ammonia sensors",
    ),
    (
        "glacier monitoring",
        "climate science",
        "glaciologists",
        ("mass balance stakes", "radar soundings", "time-lapse cameras", "meltwater gauging"),
        ("the Swiss Alps", "Svalbard"),
        "retreating ice tongues",
        "early warning of outburst floods",
        "a drone with a laser scanner",
    ),
    (
        "small-scale solar power",
        "energy",
        "installers",
        ("site surveys", "string sizing", "inverter selection", "battery scheduling"),
        ("Kenya", "Queensland"),
        "panels shaded for part of the day",
        "cheaper evening electricity",
        "a handheld irradiance meter",
    ),
    (
        "library cataloguing",
        "information science",
        "cataloguers",
        ("subject headings", "authority records", "shelf marks", "metadata crosswalks"),
        ("Edinburgh", "Montreal"),
        "duplicate records for the same book",
        "readers finding material faster",
        "a shared union catalogue",
    ),
    (
        "wildfire prevention",
        "land management",
        "fire crews",
        ("prescribed burns", "fuel breaks", "lookout patrols", "ember-resistant building"),
        ("California", "New South Wales"),
        "longer and hotter fire seasons",
        "fewer homes lost to fire",
        "a fuel moisture probe",
    ),
    (
        "orchestral conducting",
        "performing arts",
        "conductors",
        ("score study", "rehearsal planning", "balance checks", "tempo transitions"),
        ("Vienna", "Boston"),
        "limited rehearsal time",
        "performances that feel unified",
        "a marked-up study score",
    ),
    (
        "container shipping logistics",
        "trade",
        "port planners",
        ("berth scheduling", "yard stacking", "crane sequencing", "customs pre-clearance"),
        ("Rotterdam", "Busan"),
        "ships arriving off schedule",
        "shorter waits at the quay",
        "a terminal operating system",
    ),
    (
        "vaccine cold chains",
        "global health",
        "logistics officers",
        ("temperature logging", "cold box packing", "stock rotation", "last-mile delivery"),
        ("Malawi", "Peru"),
        "doses spoiled by heat",
        "more children protected on time",
        "a solar-powered fridge",
    ),
    (
        "bridge inspection",
        "civil engineering",
        "inspectors",
        ("visual surveys", "load testing", "corrosion mapping", "bearing checks"),
        ("Pittsburgh", "Lisbon"),
        "hidden corrosion in steel cables",
        "bridges that stay open longer",
        "a ground-penetrating radar cart",
    ),
    (
        "community composting",
        "waste reduction",
        "volunteers",
        ("carbon-nitrogen balance", "turning schedules", "temperature checks", "screening"),
        ("Seoul", "Portland"),
        "smelly, slow piles",
        "rich soil for local parks",
        "a long-stem compost thermometer",
    ),
    (
        "amateur astronomy",
        "science hobbies",
        "observers",
        ("polar alignment", "dark adaptation", "variable star estimates", "image stacking"),
        ("the Atacama Desert", "Northumberland"),
        "light pollution from nearby towns",
        "useful data for professional surveys",
        "a small refracting telescope",
    ),
    (
        "hospital triage",
        "emergency medicine",
        "triage nurses",
        ("vital sign checks", "acuity scoring", "fast-track streams", "reassessment rounds"),
        ("Manchester", "Auckland"),
        "crowded waiting rooms at night",
        "the sickest patients seen first",
        "an electronic tracking board",
    ),
    (
        "river flood forecasting",
        "hydrology",
        "forecasters",
        ("rain gauge networks", "rating curves", "ensemble runs", "warning thresholds"),
        ("Bangladesh", "the Rhine valley"),
        "flash floods with little warning",
        "hours of extra time to evacuate",
        "a river level radar",
    ),
    (
        "textile recycling",
        "circular economy",
        "sorters",
        ("fibre identification", "mechanical shredding", "chemical separation", "resale grading"),
        ("Prato", "Panipat"),
        "mixed fibres that cannot be separated",
        "less clothing sent to landfill",
        "a near-infrared fibre scanner",
    ),
    (
        "chess coaching",
        "education",
        "coaches",
        ("opening repertoires", "tactical drills", "endgame technique", "game reviews"),
        ("Chennai", "Saint Louis"),
        "students memorising without understanding",
        "players who think independently",
        "a demonstration board",
    ),
    (
        "electric bus fleets",
        "public transport",
        "fleet managers",
        ("depot charging", "route energy modelling", "battery health tracking", "driver training"),
        ("Shenzhen", "Oslo"),
        "range loss in cold weather",
        "quieter streets and cleaner air",
        "a charging management dashboard",
    ),
    (
        "archaeological field survey",
        "archaeology",
        "field teams",
        ("transect walking", "test pits", "finds recording", "geophysical scans"),
        ("the Orkney Islands", "Jordan"),
        "sites damaged by ploughing",
        "a clearer picture of ancient settlement",
        "a magnetometer",
    ),
    (
        "cheese making",
        "dairy craft",
        "cheesemakers",
        ("culturing milk", "cutting the curd", "pressing", "cave ageing"),
        ("Normandy", "Wisconsin"),
        "unwanted moulds in the ageing room",
        "cheeses with a distinct local character",
        "a pH meter",
    ),
    (
        "air traffic control",
        "aviation",
        "controllers",
        ("sector handovers", "separation standards", "arrival sequencing", "flow restrictions"),
        ("London", "Atlanta"),
        "congestion at peak hours",
        "safer and more punctual flights",
        "a radar display with conflict alerts",
    ),
    (
        "soil health in farming",
        "agronomy",
        "farmers",
        ("cover cropping", "reduced tillage", "soil testing", "crop rotation"),
        ("Iowa", "the Punjab"),
        "topsoil lost to erosion",
        "steadier yields in dry years",
        "a penetrometer",
    ),
    (
        "museum conservation",
        "cultural heritage",
        "conservators",
        ("condition reports", "humidity control", "cleaning trials", "reversible repairs"),
        ("Florence", "Washington"),
        "fading pigments under gallery lights",
        "objects that survive for future visitors",
        "a data logger for light levels",
    ),
    (
        "open-source software maintenance",
        "software",
        "maintainers",
        ("issue triage", "code review", "release planning", "security advisories"),
        ("Berlin", "Bangalore"),
        "burnout among a few volunteers",
        "dependable tools used by millions",
        "a continuous integration server",
    ),
    (
        "seed banking",
        "plant conservation",
        "curators",
        ("seed collection", "drying and freezing", "germination testing", "regeneration plots"),
        ("Svalbard", "Kew"),
        "wild crop relatives disappearing",
        "genetic material for future breeding",
        "a moisture equilibrium meter",
    ),
    (
        "marathon training",
        "sports science",
        "runners",
        ("base mileage", "tempo runs", "long runs", "tapering"),
        ("Boston", "Berlin"),
        "injuries from ramping up too fast",
        "faster and more comfortable races",
        "a heart-rate monitor",
    ),
    (
        "earthquake-resistant housing",
        "structural engineering",
        "builders",
        ("base isolation", "shear walls", "ductile connections", "retrofitting"),
        ("Kathmandu", "Christchurch"),
        "brittle masonry that collapses",
        "families who can stay in their homes",
        "a shaking table",
    ),
    (
        "language revitalisation",
        "linguistics",
        "community teachers",
        ("elder recordings", "immersion nests", "dictionary building", "master-apprentice pairs"),
        ("Aotearoa New Zealand", "Wales"),
        "few remaining fluent speakers",
        "children growing up bilingual",
        "a portable field recorder",
    ),
    (
        "coffee roasting",
        "food science",
        "roasters",
        ("green bean grading", "roast profiling", "cupping", "degassing"),
        ("Addis Ababa", "Melbourne"),
        "batches that taste flat or burnt",
        "coffee that shows its origin",
        "a probe thermometer in the drum",
    ),
    (
        "municipal snow clearing",
        "city operations",
        "road crews",
        ("priority routes", "brine pre-wetting", "plough rotations", "sidewalk clearing"),
        ("Montreal", "Sapporo"),
        "streets blocked after heavy storms",
        "buses and ambulances that keep moving",
        "GPS trackers on every plough",
    ),
    (
        "wind turbine maintenance",
        "renewable energy",
        "technicians",
        ("blade inspections", "gearbox oil analysis", "vibration monitoring", "bolt torque checks"),
        ("the North Sea", "Texas"),
        "leading-edge erosion on blades",
        "more hours of power each year",
        "a rope-access inspection kit",
    ),
    (
        "public library makerspaces",
        "community learning",
        "librarians",
        ("safety inductions", "3D printing sessions", "repair cafes", "project showcases"),
        ("Helsinki", "Chicago"),
        "equipment that sits unused",
        "neighbours who learn practical skills together",
        "a laser cutter",
    ),
    (
        "birdsong recording",
        "field ornithology",
        "recordists",
        ("dawn chorus surveys", "microphone placement", "spectrogram review", "call identification"),
        ("Costa Rica", "Scotland"),
        "traffic noise masking quiet calls",
        "better counts of hidden species",
        "a parabolic microphone",
    ),
    (
        "tea cultivation",
        "agriculture",
        "growers",
        ("plucking rounds", "pruning cycles", "shade management", "withering and rolling"),
        ("Darjeeling", "Shizuoka"),
        "unpredictable monsoon rains",
        "leaves with a consistent flavour",
        "a leaf moisture meter",
    ),
    (
        "data centre cooling",
        "infrastructure",
        "facility engineers",
        ("hot-aisle containment", "free cooling", "liquid-cooled racks", "airflow modelling"),
        ("Dublin", "Phoenix"),
        "rising power bills in summer",
        "lower energy use per computation",
        "a thermal camera",
    ),
    (
        "mountain rescue",
        "emergency services",
        "rescue volunteers",
        ("avalanche transceivers", "rope systems", "casualty care", "helicopter liaison"),
        ("the Dolomites", "the Lake District"),
        "walkers caught out by sudden weather",
        "lives saved in the first critical hour",
        "a satellite messenger",
    ),
    (
        "violin making",
        "instrument craft",
        "luthiers",
        ("wood selection", "plate tuning", "varnishing", "setting the sound post"),
        ("Cremona", "Mittenwald"),
        "instruments that sound dull or harsh",
        "violins that players keep for decades",
        "a set of thickness callipers",
    ),
    (
        "recycling of lithium batteries",
        "materials science",
        "recyclers",
        ("discharging", "shredding", "hydrometallurgy", "cathode regeneration"),
        ("Nevada", "Sweden"),
        "fires in collection trucks",
        "metals returned to new batteries",
        "an X-ray fluorescence analyser",
    ),
    (
        "school gardens",
        "education",
        "teachers",
        ("raised beds", "seed saving", "harvest lessons", "compost rotas"),
        ("Nairobi", "Bristol"),
        "gardens abandoned over the summer holidays",
        "pupils who eat more vegetables",
        "a rain barrel",
    ),
    (
        "lighthouse keeping",
        "maritime history",
        "keepers",
        ("lamp trimming", "fog signals", "weather logs", "lens cleaning"),
        ("Maine", "Brittany"),
        "isolation during long winter storms",
        "ships guided safely past the rocks",
        "a clockwork lens rotation",
    ),
    (
        "traffic calming",
        "urban planning",
        "street designers",
        ("speed humps", "narrowed lanes", "raised crossings", "school streets"),
        ("Amsterdam", "Bogota"),
        "speeding through residential streets",
        "children who can walk to school",
        "a speed camera survey",
    ),
    (
        "mushroom foraging",
        "natural history",
        "foragers",
        ("spore prints", "habitat reading", "look-alike checks", "sustainable picking"),
        ("Estonia", "the Pacific Northwest"),
        "poisonous look-alikes",
        "a safer and richer harvest",
        "a field guide with keys",
    ),
    (
        "desalination plants",
        "water supply",
        "plant engineers",
        ("reverse osmosis", "pre-treatment", "brine disposal", "energy recovery"),
        ("Perth", "Israel"),
        "membranes clogged by algae blooms",
        "reliable drinking water in droughts",
        "a pressure exchanger",
    ),
    (
        "community radio",
        "media",
        "volunteer broadcasters",
        ("programme schedules", "licence compliance", "live interviews", "emergency broadcasts"),
        ("Nepal", "rural Ireland"),
        "funding that runs out every year",
        "local news that nobody else covers",
        "a portable mixing desk",
    ),
]

INTRO = [
    "{Name} sits at the meeting point of {field} and everyday practice, and it rewards people who pay attention to small details.",
    "Ask {people} what makes {name} difficult and most of them will mention {problem} before anything else.",
    "Over the last few decades {name} has moved from a niche interest to a discipline with its own methods, vocabulary and professional networks.",
    "This overview explains how {name} works, where the hard trade-offs are, and what the experience of {place1} and {place2} suggests about the years ahead.",
    "The promise of {name} is easy to state: {benefit}. Delivering it consistently is much harder.",
    "Much of the work in {name} is invisible to outsiders, yet it shapes outcomes that many people depend on.",
]
HISTORY = [
    "Early efforts in {name} relied almost entirely on experience passed from one generation of {people} to the next.",
    "Written guidance appeared only when practitioners began comparing notes across regions, and the first manuals were thin, practical and often contradictory.",
    "A turning point came around {year}, when a group of {people} in {place1} started keeping careful records of {term1}.",
    "Those records showed that habits everyone took for granted were sometimes wrong, and that {term2} mattered more than anyone had assumed.",
    "By the {decade}s, training courses had spread the new methods well beyond their place of origin.",
    "Not every change was welcomed. Some experienced {people} argued that the new procedures replaced judgement with paperwork.",
    "The debate was settled less by argument than by results: sites that adopted {term1} and {term2} reported fewer failures.",
]
METHOD = [
    "In practice the work starts with {term1}, because every later decision depends on what it reveals.",
    "{Term2} follows, and it is here that most beginners make their first expensive mistakes.",
    "Experienced {people} treat {term3} as a routine rather than an emergency measure, checking it on a fixed schedule.",
    "The last step, {term4}, is often skipped when time is short, even though it catches problems while they are still cheap to fix.",
    "A typical cycle takes about {days} days from start to finish, although weather, staffing and budgets can stretch it considerably.",
    "Good teams write down what they observe at each stage, which makes it possible to compare one season or one site with another.",
    "Most teams now rely on {tool}, which turns guesswork into a number that can be tracked over time.",
    "The tool does not replace judgement. It simply tells {people} where to look first.",
    "One rule of thumb is to change only one thing at a time, so that the effect of each change can be seen clearly.",
]
CHALLENGE = [
    "The central difficulty remains {problem}, and there is no single fix for it.",
    "Costs rise quickly when {term3} is neglected, because small problems compound over weeks and months.",
    "Funding tends to follow visible crises rather than steady maintenance, which leaves many programmes running on goodwill.",
    "Recruitment is another worry. Fewer young people train as {people}, and much practical knowledge retires with the people who hold it.",
    "Measurement is harder than it looks. Two teams can follow the same written procedure for {term1} and still record different results.",
    "Regulation helps in some places and hinders in others, especially when rules written for large operations are applied to small ones.",
    "There is also the risk of overconfidence: a run of good results can make people skip {term4} just when conditions are changing.",
]
CASE = [
    "A programme in {place1} offers a useful example. Starting in {year}, it combined {term1} with regular {term3} across {sites} sites.",
    "Within {years} years the programme reported that {problem} had fallen by roughly {pct} percent compared with neighbouring areas.",
    "The organisers credit the result less to new equipment than to a simple weekly routine that everyone followed.",
    "In {place2} the picture was more mixed. A similar effort stalled when funding for {tool} ran out after the pilot phase.",
    "What the two cases share is a dependence on trained {people} who stay long enough to learn the local conditions.",
    "Participants in both places said the most valuable change was sharing data openly, so that mistakes made at one site were not repeated at another.",
    "Independent reviewers later noted that the figures from {place1} were collected carefully but over a short period, and they urged caution before generalising.",
]
OUTLOOK = [
    "Looking ahead, the most promising developments in {name} are modest rather than revolutionary.",
    "Cheaper sensors and better record keeping will make {term2} easier to do well and easier to check.",
    "Training matters at least as much as technology, and several countries now offer short courses in {term4} for newcomers.",
    "If the field can keep its hard-won habits while adopting new tools, {benefit} will become the norm rather than the exception.",
    "The lesson from decades of practice is that {name} succeeds when routine work is valued as much as dramatic interventions.",
    "For readers who want to get involved, the simplest starting point is to spend a day alongside experienced {people} and watch how they work.",
]
SECTIONS = [("", INTRO), ("History", HISTORY), ("How the work is done", METHOD), ("Challenges", CHALLENGE),
            ("A closer look", CASE), ("Outlook", OUTLOOK)]  # fmt: skip


def _fill(template: str, slots: dict[str, str]) -> str:
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def make_document(index: int, topic: tuple, rng: random.Random) -> str:
    name, field, people, terms, places, problem, benefit, tool = topic
    year = rng.randrange(1950, 2000)
    slots = {
        "name": name, "Name": name, "field": field, "people": people, "problem": problem,
        "benefit": benefit, "tool": tool, "place1": places[0], "place2": places[1],
        "term1": terms[0], "term2": terms[1], "term3": terms[2], "term4": terms[3],
        "Term2": terms[1], "year": str(year), "decade": str(year // 10 * 10 + 10),
        "days": str(rng.choice([3, 5, 7, 10, 14, 21, 30])), "sites": str(rng.randrange(6, 60)),
        "years": str(rng.randrange(2, 9)), "pct": str(rng.randrange(15, 61)),
    }  # fmt: skip
    target_words = rng.randrange(MIN_WORDS, MAX_WORDS)
    parts = [f"Title: {name.capitalize()}: practice, problems and prospects"]
    # Each sentence is used at most once per document; later rounds add paragraphs from what is left.
    unused = [(heading, rng.sample(pool, len(pool))) for heading, pool in SECTIONS]
    words = 0
    rounds = 0
    while words < target_words and any(left for heading, left in unused if heading):
        for heading, left in unused:
            if not left or (rounds and not heading):
                continue
            take = [left.pop() for _ in range(min(len(left), rng.randrange(3, 6)))]
            paragraph = " ".join(_fill(s, slots) for s in take)
            if heading:
                parts.append(heading if not rounds else f"{heading}, continued")
            parts.append(paragraph)
            words += len(paragraph.split())
            if words >= target_words:
                break
        rounds += 1
    return "\n\n".join(parts)


def build() -> str:
    rng = random.Random(SEED)
    docs = [make_document(i, topic, rng) for i, topic in enumerate(TOPICS)]
    return "\n---\n".join(docs) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file is out of date")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default: {OUT})")
    args = parser.parse_args()
    text = build()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run python scripts/make_docs.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(TOPICS)} documents to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
