"""Chapter 10 data: the hand-written sentences that data/corpus/make_corpus.py builds the messy corpus from.

Everything here was written for minigpt. Sentences carry slots in braces ({name}, {place}, {num}, ...) that the
generator fills from the word lists at the bottom, so that documents on one topic share sentences but rarely
whole runs of five words. Two banks of language samples are kept apart on purpose:

- TOPICS_* feed the corpus documents and the training samples of chapter 10's language identifier;
- HELD_OUT holds other sentences, written separately, that no model is trained on: the language-ID comparison
  (ours against langdetect) is run on them.
"""

# ---------------------------------------------------------------------------------------------------------------
# English prose, by topic (good-quality documents)

TOPICS_EN = {
    "garden": [
        "{name} planted a row of {veg} beside the fence early one {day} morning.",
        "The soil in that corner is heavy clay, so it needs plenty of compost before anything grows well.",
        "By the middle of {month} the first green shoots had pushed through the dark earth.",
        "Slugs came out after every rain, and {name} collected them in a bucket each evening.",
        "A neighbour suggested planting marigolds between the beds to keep some of the pests away.",
        "Watering in the evening rather than at noon means less of the water is lost to the sun.",
        "The {veg} grew faster than expected, and by {month} there were {num} of them ready to pick.",
        "When the weather turned cold, the tender seedlings were moved into a small glass frame.",
        "Every spring {name} writes down what was sown and where, because memory is not a good record.",
        "Rotating crops from one bed to the next each year keeps the soil from being worn out.",
        "The old apple tree at the end of the {place} gives more fruit than the family can eat.",
        "Whatever cannot be eaten fresh is dried, pickled or given away to friends in {town}.",
        "A garden teaches patience, since nothing you do today will show for several weeks.",
        "In the shade of the wall, ferns and mint do better than the sun-loving herbs.",
    ],
    "bicycle": [
        "{name} found an old bicycle in the {place} and decided to bring it back to life.",
        "The chain was covered in rust, so it spent a night soaking in a tin of light oil.",
        "Both tyres had perished, and new ones cost {num} pounds at the shop in {town}.",
        "Adjusting the brakes took longer than expected, because one cable had frayed inside its housing.",
        "A bicycle that is ridden every day needs its tyres checked at least once a week.",
        "On the first ride the gears slipped on every hill, which meant the derailleur was out of line.",
        "After a small turn of the adjusting screw, the chain moved cleanly across all the sprockets.",
        "The saddle was lowered by two centimetres so that {name} could reach the ground at traffic lights.",
        "Riding to work in {month} is pleasant, although the wind along the river can be fierce.",
        "A set of lights, a bell and a good lock turned the old machine into a useful one.",
        "Cleaning the frame revealed a serial number and a maker's badge from a factory long since closed.",
        "It is cheaper to learn simple repairs yourself than to pay someone each time a tube is punctured.",
        "By {month} the bicycle had covered {num} kilometres without any serious trouble.",
        "Friends in {town} now bring their own bicycles round on {day} afternoons to be looked at.",
    ],
    "bread": [
        "{name} began baking bread at home during a long and rainy {month}.",
        "The first loaves were dense and flat, because the dough had not been left to rise long enough.",
        "Flour, water, salt and yeast are all that a simple loaf really needs.",
        "Kneading the dough for ten minutes develops the gluten that traps the gas from the yeast.",
        "A warm kitchen speeds the rise, while a cool one gives the bread a deeper flavour.",
        "On {day} mornings the whole house smells of the loaf cooling on the rack by the window.",
        "A sourdough starter is kept alive by feeding it fresh flour and water every day.",
        "{name} named the starter after a grandmother from {town} who had baked every week of her life.",
        "Steam in the oven during the first minutes lets the crust stay soft while the loaf expands.",
        "Tapping the bottom of the loaf and hearing a hollow sound shows that it is baked through.",
        "Over one winter {name} baked {num} loaves and gave most of them away to the neighbours.",
        "Rye flour makes a darker, heavier bread that keeps fresh for several days.",
        "Cutting a loaf while it is still hot lets the moisture escape and leaves the crumb gummy.",
        "The bakery on the corner of the {place} sells its day-old bread at half price.",
    ],
    "river": [
        "The river path from {town} follows the water for {num} kilometres to the next village.",
        "{name} walks it every {day}, starting just after sunrise when the mist still lies on the fields.",
        "Herons stand perfectly still in the shallows, waiting for a fish to come within reach.",
        "After heavy rain in {month} the water rose over the lower meadows and stayed there for a week.",
        "An old stone bridge crosses the river at the point where the valley is narrowest.",
        "Volunteers clear fallen branches from the path so that walkers and cyclists can pass.",
        "Kingfishers are seen most often near the {place}, where the bank is steep and quiet.",
        "In summer children from the village swim in a deep pool below the weir.",
        "The water is clearer than it was twenty years ago, since the factories upstream closed.",
        "A small boat hire opens at weekends and rents rowing boats by the hour.",
        "{name} keeps a notebook of the birds seen on each walk, with the date and the weather.",
        "Otters returned to this stretch of the river a few years ago after a long absence.",
        "When the path floods, walkers take the lane that runs along the top of the ridge instead.",
        "By late afternoon the light turns golden and the swallows fly low over the water.",
    ],
    "library": [
        "The public library in {town} opened in a converted school building in {year}.",
        "{name} has worked at the front desk there for {num} years and knows most of the regular readers.",
        "On {day} mornings a group of parents brings small children for songs and picture books.",
        "The reading room on the first floor is quiet, with tall windows that face the {place}.",
        "Anyone with an address in the district can borrow up to twelve books at a time.",
        "Older newspapers are kept on film in the basement, and a machine is there to read them.",
        "In {month} the library ran a series of evening talks about the history of the town.",
        "Volunteers teach basic computer skills to older visitors twice a week.",
        "Books that come back damaged are repaired in a small workshop behind the lending desk.",
        "{name} believes a library is one of the few places where nobody expects you to buy anything.",
        "A local historian donated a collection of maps and letters from the last century.",
        "The building needed a new roof, and the money was raised by the readers themselves.",
        "During exams the study tables are full from the moment the doors open.",
        "Each year the library counts how many books were borrowed; last year it was {num} thousand.",
    ],
    "stars": [
        "{name} set up a small telescope in the {place} on a clear night in {month}.",
        "Far from the lights of {town}, the sky is dark enough to see the band of the Milky Way.",
        "The eyes need about twenty minutes in the dark before the fainter stars appear.",
        "A red torch lets you read a star chart without spoiling your night vision.",
        "Jupiter was bright in the east, and four of its moons showed as tiny points in a line.",
        "Through the eyepiece the rings of Saturn looked almost too neat to be real.",
        "The local astronomy club meets on the first {day} of every month in the village hall.",
        "Members lend telescopes to beginners, who often find binoculars just as rewarding at first.",
        "A meteor shower in {month} can show dozens of shooting stars an hour after midnight.",
        "{name} counted {num} meteors in two hours, lying on a blanket in the cold grass.",
        "The Moon is best observed when it is half full, as the shadows show the craters clearly.",
        "Clouds rolled in just before the eclipse, which is a disappointment every observer knows.",
        "Photographs of the night sky need long exposures and a camera that does not move.",
        "The light from some of those stars left them long before anyone was there to see it.",
    ],
}

# Encyclopaedia-style entries about invented places ("wiki" source, plain .txt files).
WIKI_EN = [
    "{town} is a small market town on the River {river} in the {region}.",
    "At the census of {year} it had a population of {num},{num3}.",
    "The town grew around a ford where the old {road} road crossed the {river}.",
    "Its church of St {saint} dates from the {century} century and has a square {material} tower.",
    "A weekly market has been held on {day}s since a charter was granted in {year2}.",
    "The main employers are a {industry} works, the district hospital and several schools.",
    "The railway reached {town} in {year3}, and the station is still served by trains to {city}.",
    "Notable buildings include the {material} corn exchange and a row of {century}-century almshouses.",
    "The {river} floods the meadows south of the town most winters, which limits building there.",
    "{town} is twinned with {twin}, and an exchange of schoolchildren takes place every {month}.",
    "The local football club plays at {ground} Park, on the road towards {town2}.",
    "The town museum, in a former {industry} warehouse, holds tools, photographs and farm records.",
]

# ---------------------------------------------------------------------------------------------------------------
# Chinese prose, by topic

TOPICS_ZH = {
    "cooking": [
        "{name}每个{day}都会去菜市场买新鲜的蔬菜和豆腐。",
        "做番茄炒蛋的时候，先把鸡蛋炒到半熟再盛出来。",
        "番茄要切成小块，用中火慢慢炒出汤汁。",
        "最后把鸡蛋倒回锅里，加一点盐和糖就可以出锅了。",
        "{name}的奶奶住在{city}，她做的红烧肉全家人都爱吃。",
        "包饺子的时候，一家人围坐在桌子旁边，一边包一边聊天。",
        "饺子馅用猪肉和白菜，也可以加一些虾仁让味道更鲜。",
        "煮饺子时水开了要加三次凉水，这样饺子皮才不会破。",
        "周末{name}学会了做{num}道家常菜，朋友们都说很好吃。",
        "米饭煮好以后不要马上打开锅盖，再焖十分钟会更香。",
        "冬天喝一碗热汤，整个人都暖和起来了。",
        "做菜最重要的是火候，太大容易糊，太小又不够香。",
    ],
    "park": [
        "{city}的人民公园每天早上都有很多人在锻炼身体。",
        "老人们在湖边打太极拳，动作又慢又稳。",
        "{name}喜欢沿着公园里的小路跑步，一圈大约{num}公里。",
        "春天的时候，湖边的柳树发出了嫩绿的新芽。",
        "周末有很多家长带着孩子来这里放风筝。",
        "公园的东门旁边有一家小茶馆，价格不贵，环境也很安静。",
        "下午常常有人在亭子里下象棋，旁边还围着不少看热闹的人。",
        "秋天银杏叶变黄了，地上像铺了一层金色的地毯。",
        "{name}每个{day}都带着相机来拍湖上的野鸭。",
        "晚上广场上有人跳舞，音乐声一直持续到九点左右。",
        "为了保护草坪，公园里有些地方是不能进去的。",
        "去年公园新修了一条自行车道，骑车的人越来越多了。",
    ],
    "study": [
        "{name}今年上高二，每天晚上都要复习到十点多。",
        "学习外语最好的方法是每天坚持读一点，听一点。",
        "图书馆的自习室很安静，考试前常常一座难求。",
        "{name}把不会的单词写在小本子上，坐公交车的时候拿出来看。",
        "数学老师说，做题以后一定要检查，粗心是最大的敌人。",
        "周末同学们约好一起去{city}的博物馆参观。",
        "这次期中考试，{name}的语文成绩提高了{num}分。",
        "遇到不懂的问题，不要怕问，老师和同学都很愿意帮忙。",
        "睡眠不足会影响第二天的注意力，所以不要熬夜。",
        "每学完一章，{name}都会画一张思维导图来整理重点。",
        "读书不只是为了考试，也是为了认识更大的世界。",
        "假期里{name}读完了三本小说，还写了读书笔记。",
    ],
    "train": [
        "{name}坐高铁从北京去{city}，只用了不到五个小时。",
        "车厢里很干净，座位宽敞，还可以给手机充电。",
        "窗外的风景一直在变化，从平原到山区，再到一片片稻田。",
        "列车上有餐车，不过很多乘客还是喜欢自己带吃的。",
        "到站以前，广播会用中文和英文提醒乘客带好行李。",
        "{city}的火车站很大，第一次来的人很容易走错出口。",
        "{name}提前{num}天在网上买了票，还选了靠窗的座位。",
        "春节前后是一年中最忙的时候，车票往往很快就卖完了。",
        "坐夜车的时候，{name}喜欢听着铁轨的声音慢慢睡着。",
        "旅行让人放松，也能看到不同地方的生活方式。",
        "下车以后，{name}先去尝了当地有名的小吃。",
        "回家的路上，{name}把这次旅行的照片整理成了一本相册。",
    ],
}

# French, German and Spanish: documents the language filter should drop (the chapter keeps English and Chinese).
TOPICS_FR = [
    "{name} va au marché de {city} chaque {day} matin avec un grand panier.",
    "Les fruits de saison sont moins chers et ont beaucoup plus de goût.",
    "Le boulanger du quartier prépare le pain avant le lever du soleil.",
    "Nous avons pris le train pour la côte et la mer était encore froide.",
    "Après le déjeuner, toute la famille est partie se promener dans la forêt.",
    "Il faut arroser les tomates le soir, quand la chaleur de la journée est passée.",
    "La bibliothèque municipale ouvre ses portes à neuf heures du matin.",
    "{name} a lu {num} romans pendant les vacances d'été.",
    "Les enfants jouent dans la cour pendant que les parents discutent sur un banc.",
    "Le musée propose une exposition sur l'histoire de la ville et de son port.",
    "Quand il pleut, on reste à la maison et on prépare une soupe de légumes.",
    "Le vélo est le moyen le plus simple de traverser le centre sans embouteillages.",
    "Chaque année, le village organise une fête avec de la musique et des danses.",
    "Il est important de bien dormir avant un examen difficile.",
]
TOPICS_DE = [
    "{name} fährt jeden {day} mit dem Fahrrad zur Arbeit nach {city}.",
    "Im Herbst werden die Blätter gelb und rot und fallen von den Bäumen.",
    "Die Bäckerei an der Ecke verkauft frische Brötchen schon ab sechs Uhr.",
    "Am Wochenende sind wir in die Berge gefahren und haben eine lange Wanderung gemacht.",
    "Nach dem Essen trinken die Großeltern gern eine Tasse Kaffee im Garten.",
    "Der Zug hatte zwanzig Minuten Verspätung, deshalb haben wir den Anschluss verpasst.",
    "In der Stadtbibliothek kann man Bücher, Zeitschriften und Filme ausleihen.",
    "{name} hat in diesem Jahr {num} Bücher gelesen und schreibt über jedes eine kurze Notiz.",
    "Die Kinder bauen im Winter einen Schneemann vor dem Haus.",
    "Auf dem Wochenmarkt gibt es Gemüse, Käse und Blumen aus der Region.",
    "Wenn es regnet, bleiben wir zu Hause und spielen zusammen Karten.",
    "Das Museum zeigt eine Ausstellung über die Geschichte des Hafens.",
    "Jeden Sommer feiert das Dorf ein Fest mit Musik und Tanz auf dem Platz.",
    "Vor einer wichtigen Prüfung sollte man früh schlafen gehen.",
]
TOPICS_ES = [
    "{name} va al mercado de {city} todos los {day} por la mañana.",
    "Las frutas de temporada son más baratas y tienen mucho más sabor.",
    "El panadero del barrio empieza a trabajar antes de que salga el sol.",
    "Fuimos en tren hasta la costa y el agua del mar todavía estaba fría.",
    "Después de comer, toda la familia salió a pasear por el parque.",
    "Hay que regar las plantas por la tarde, cuando ya no hace tanto calor.",
    "La biblioteca del pueblo abre a las nueve y cierra a las ocho de la noche.",
    "{name} leyó {num} novelas durante las vacaciones de verano.",
    "Los niños juegan en la plaza mientras los padres charlan en un banco.",
    "El museo tiene una exposición sobre la historia de la ciudad y su puerto.",
    "Cuando llueve nos quedamos en casa y preparamos una sopa caliente.",
    "La bicicleta es la forma más sencilla de cruzar el centro sin atascos.",
    "Cada año el pueblo celebra una fiesta con música y baile en la calle.",
    "Es importante dormir bien la noche antes de un examen difícil.",
]

# ---------------------------------------------------------------------------------------------------------------
# Held-out language samples (never trained on; the language-ID comparison with langdetect runs on these)

HELD_OUT = {
    "en": [
        "Could you tell me where the nearest post office is?",
        "The meeting has been moved to Thursday afternoon because the manager is away.",
        "My brother repairs old radios in his spare time and sells them at the weekend fair.",
        "It rained all night, and by morning the streets were full of puddles.",
        "She forgot her umbrella on the bus and only noticed when she reached the office.",
        "We are running out of milk, so please buy some on your way home.",
        "The museum is free on the first Sunday of every month.",
        "He learned to swim when he was already forty years old.",
        "Please remember to switch off the lights before you leave the building.",
        "The children built a small dam across the stream with stones and mud.",
        "Our flight was cancelled, so we spent the night in a hotel near the airport.",
        "That restaurant serves the best fish soup I have ever tasted.",
        "The price of train tickets went up again at the start of the year.",
        "I have been reading a long novel about a family of sailors.",
        "A small dog followed us all the way back from the beach.",
        "The new bridge will open to traffic next spring if the work goes well.",
        "They painted the kitchen yellow, which makes it look much bigger.",
        "Most of the apples fell from the tree during the storm last night.",
        "You should keep the receipt in case the shoes do not fit.",
        "Learning to play the violin takes years of patient practice.",
    ],
    "zh": [
        "请问最近的邮局在哪里？",
        "会议改到星期四下午了，因为经理出差了。",
        "我哥哥业余时间喜欢修理旧收音机。",
        "昨天晚上下了一整夜的雨，早上街上到处都是水坑。",
        "她把雨伞忘在公交车上了，到了公司才发现。",
        "家里的牛奶快喝完了，你回家的时候顺便买一点吧。",
        "这家博物馆每个月的第一个星期天免费开放。",
        "他四十岁的时候才学会游泳。",
        "离开大楼之前请记得关灯。",
        "孩子们用石头和泥巴在小河上筑了一道小坝。",
        "我们的航班取消了，只好在机场附近的酒店住了一晚。",
        "那家饭馆的鱼汤是我喝过最好喝的。",
        "今年年初火车票又涨价了。",
        "我最近在读一本关于一个水手家庭的长篇小说。",
        "一只小狗从海边一直跟着我们回到了家。",
        "如果工程顺利，新桥明年春天就可以通车。",
        "他们把厨房刷成了黄色，看起来大了很多。",
        "昨晚的暴风雨把树上的苹果吹掉了一大半。",
        "你最好把发票留着，万一鞋子不合脚还可以换。",
        "学拉小提琴需要很多年耐心的练习。",
    ],
    "fr": [
        "Pourriez-vous me dire où se trouve le bureau de poste le plus proche ?",
        "La réunion a été déplacée à jeudi après-midi parce que la directrice est absente.",
        "Mon frère répare de vieilles radios pendant son temps libre.",
        "Il a plu toute la nuit et ce matin les rues étaient pleines de flaques.",
        "Elle a oublié son parapluie dans le bus et ne s'en est rendu compte qu'au bureau.",
        "Il n'y a presque plus de lait, achète-en en rentrant s'il te plaît.",
        "Le musée est gratuit le premier dimanche de chaque mois.",
        "Il a appris à nager alors qu'il avait déjà quarante ans.",
        "N'oubliez pas d'éteindre les lumières avant de quitter le bâtiment.",
        "Les enfants ont construit un petit barrage sur le ruisseau avec des pierres.",
        "Notre vol a été annulé, nous avons donc dormi dans un hôtel près de l'aéroport.",
        "Ce restaurant sert la meilleure soupe de poisson que j'aie jamais goûtée.",
        "Le prix des billets de train a encore augmenté au début de l'année.",
        "Je lis en ce moment un long roman sur une famille de marins.",
        "Un petit chien nous a suivis depuis la plage jusqu'à la maison.",
        "Le nouveau pont ouvrira à la circulation au printemps prochain.",
        "Ils ont peint la cuisine en jaune, ce qui la fait paraître beaucoup plus grande.",
        "La plupart des pommes sont tombées de l'arbre pendant la tempête.",
        "Gardez le ticket de caisse au cas où les chaussures ne vous iraient pas.",
        "Apprendre à jouer du violon demande des années de pratique patiente.",
    ],
    "de": [
        "Können Sie mir sagen, wo die nächste Post ist?",
        "Die Besprechung wurde auf Donnerstagnachmittag verschoben, weil die Chefin verreist ist.",
        "Mein Bruder repariert in seiner Freizeit alte Radios.",
        "Es hat die ganze Nacht geregnet, und am Morgen waren die Straßen voller Pfützen.",
        "Sie hat ihren Regenschirm im Bus vergessen und es erst im Büro bemerkt.",
        "Die Milch ist fast alle, bitte kauf auf dem Heimweg welche.",
        "Das Museum ist am ersten Sonntag jedes Monats kostenlos.",
        "Er hat erst mit vierzig Jahren schwimmen gelernt.",
        "Bitte denken Sie daran, das Licht auszuschalten, bevor Sie das Gebäude verlassen.",
        "Die Kinder haben mit Steinen und Schlamm einen kleinen Damm im Bach gebaut.",
        "Unser Flug wurde gestrichen, deshalb haben wir in einem Hotel am Flughafen übernachtet.",
        "Dieses Restaurant hat die beste Fischsuppe, die ich je gegessen habe.",
        "Die Preise für Zugfahrkarten sind zu Jahresbeginn wieder gestiegen.",
        "Ich lese gerade einen langen Roman über eine Familie von Seeleuten.",
        "Ein kleiner Hund ist uns vom Strand bis nach Hause gefolgt.",
        "Die neue Brücke soll im nächsten Frühjahr für den Verkehr geöffnet werden.",
        "Sie haben die Küche gelb gestrichen, dadurch wirkt sie viel größer.",
        "Die meisten Äpfel sind während des Sturms vom Baum gefallen.",
        "Heben Sie den Kassenbon auf, falls die Schuhe nicht passen.",
        "Geige spielen zu lernen braucht viele Jahre geduldiger Übung.",
    ],
    "es": [
        "¿Podría decirme dónde está la oficina de correos más cercana?",
        "La reunión se ha cambiado al jueves por la tarde porque la directora está de viaje.",
        "Mi hermano arregla radios antiguas en su tiempo libre.",
        "Llovió toda la noche y por la mañana las calles estaban llenas de charcos.",
        "Se olvidó el paraguas en el autobús y no se dio cuenta hasta llegar a la oficina.",
        "Casi no queda leche, así que compra un poco cuando vuelvas a casa.",
        "El museo es gratuito el primer domingo de cada mes.",
        "Aprendió a nadar cuando ya tenía cuarenta años.",
        "Por favor, recuerde apagar las luces antes de salir del edificio.",
        "Los niños construyeron una pequeña presa en el arroyo con piedras y barro.",
        "Cancelaron nuestro vuelo, así que pasamos la noche en un hotel cerca del aeropuerto.",
        "Ese restaurante sirve la mejor sopa de pescado que he probado nunca.",
        "El precio de los billetes de tren volvió a subir a principios de año.",
        "Estoy leyendo una novela larga sobre una familia de marineros.",
        "Un perro pequeño nos siguió desde la playa hasta casa.",
        "El nuevo puente se abrirá al tráfico la próxima primavera si las obras van bien.",
        "Pintaron la cocina de amarillo y ahora parece mucho más grande.",
        "La mayoría de las manzanas se cayeron del árbol durante la tormenta.",
        "Guarde el recibo por si los zapatos no le quedan bien.",
        "Aprender a tocar el violín requiere años de práctica paciente.",
    ],
}

# ---------------------------------------------------------------------------------------------------------------
# Dialogue with filler words. Fillers are inserted by the generator at marked places: "~" becomes a filler
# (or nothing), so the generator also knows the clean text.

DIALOGUE_ZH = [
    ("~我觉得我们可以先去{city}看看。", "~好啊，那什么时候出发？"),
    ("~你吃饭了吗？", "~还没呢，一起去吃面吧。"),
    ("~这个周末你有空吗？", "~有空啊，你想做什么？"),
    ("~明天的会议是几点开始？", "~好像是上午{num}点，我再确认一下。"),
    ("~我把作业忘在家里了。", "~没关系，下午交给老师也可以。"),
    ("~这家店的咖啡怎么样？", "~还不错，就是人有点多。"),
    ("~你最近在看什么书？", "~在看一本讲历史的书，挺有意思的。"),
    ("~外面下雨了，你带伞了吗？", "~带了，我们一起走吧。"),
    ("~我想学做饭，你能教我吗？", "~当然可以，先从炒青菜开始吧。"),
    ("~火车票买好了吗？", "~买好了，是后天早上的。"),
]
DIALOGUE_EN = [
    ("~I think we should leave at {num} to beat the traffic.", "~That works for me, I will bring the map."),
    ("~Have you finished the report for {name}?", "~Almost, I just need to check the figures."),
    ("~Do you want to get lunch after the meeting?", "~Sure, the new place on the corner looks good."),
    ("~I could not find my keys this morning.", "~They were on the kitchen table all along."),
    ("~Is the train to {town} running today?", "~Yes, but it is about ten minutes late."),
    ("~What did you think of the film?", "~The ending was better than I expected."),
]
FILLERS_ZH = ["嗯嗯，", "啊啊，", "呃，", "嗯，", "呃呃，", "嗯嗯嗯，"]
FILLERS_EN = ["um, ", "uh, ", "erm, ", "um, um, ", "uh, "]

# ---------------------------------------------------------------------------------------------------------------
# Poor documents: spam, keyword stuffing, ad copy with no content, boilerplate-only pages

SPAM = [
    "WIN BIG at the online casino today!!! Claim your {num} free spins now, no deposit needed.",
    "Cheap viagra and other pills shipped overnight, no prescription, order now and save {num}%.",
    "Hot singles and escort services near {town}, click the link below to chat right now.",
    "Best casino bonus codes of the year, jackpot guaranteed, sign up in {num} seconds.",
]
STUFFING = ["cheap flights", "best price", "buy now", "discount shoes", "free shipping", "cheap hotels",
            "london deals", "top rated", "sale today"]
AD_COPY = [
    "Are you looking for the best {product} on the market? You have come to the right place.",
    "Our {product} is the number one choice for people who want the very best.",
    "Many customers have told us that our {product} changed their life in amazing ways.",
    "Do not wait any longer, because this offer will not last and stocks are limited.",
    "Click here to find out more about how our {product} can help you today.",
    "We are proud to offer a wide range of {product} solutions for every need and budget.",
    "Contact our friendly team to learn why so many people trust our {product}.",
    "In conclusion, our {product} is the perfect solution for anyone who wants results.",
    "Join thousands of happy customers and discover the difference for yourself.",
    "Our experts are always ready to answer any questions you may have about {product}.",
]
AD_COPY_ZH = [
    "您还在为找不到好的{product}而烦恼吗？",
    "我们的产品是您最好的选择，品质一流，服务贴心。",
    "很多顾客都说用了以后效果非常好，生活变得更加美好。",
    "机会难得，数量有限，千万不要错过。",
    "点击这里了解更多详情，马上就能享受优惠。",
    "我们的专业团队随时为您提供最好的服务。",
    "总之，选择我们就是选择成功。",
]
PRODUCTS_ZH = ["净水器", "按摩椅", "学习机", "护肤品", "保健品"]
PRODUCTS = ["garden furniture", "vitamin pack", "phone case", "online course", "water filter", "desk lamp",
            "running shoe", "coffee machine", "travel insurance", "hair dryer"]
KEYBOARD_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "qazwsx", "edcrfv", "tgbyhn"]
SYMBOL_BITS = ["★★★", ">>>", "$$$", "!!!", "###", "@@@", "***", "+++", "|||", "~~~", "<<<", "%%%"]
SHORT = ["Page not found.", "Click here to continue.", "Loading, please wait.", "Sign in to read more.",
         "This page has moved.", "Subscribe for updates.", "Error 404.", "Thanks for visiting!"]

# Boilerplate for the HTML pages: navigation, cookie banners, share buttons, footers.
NAV_ITEMS = ["Home", "News", "About us", "Contact", "Blog", "Shop", "Events", "Login", "Register", "Help"]
COOKIE_TEXT = "We use cookies to improve your experience. By continuing you accept our cookie policy."
SHARE_TEXT = ["Share on social media", "Tweet this", "Email a friend", "Print this page"]
RELATED = ["Ten tips for a better morning", "Why everyone is talking about tea", "Our most popular posts",
           "You might also like", "Trending this week"]

# ---------------------------------------------------------------------------------------------------------------
# Word lists for the slots

NAMES = ["Anna", "Ben", "Chloe", "Daniel", "Ella", "Farid", "Grace", "Hugo", "Isla", "Jonah", "Kavya", "Leo",
         "Maya", "Noah", "Olivia", "Priya", "Quentin", "Rosa", "Samir", "Tara", "Umar", "Vera", "Will", "Yusuf"]
NAMES_ZH = ["小明", "李华", "王芳", "张伟", "陈静", "刘洋", "赵磊", "孙丽", "周杰", "吴敏", "郑凯", "黄婷"]
NAMES_FR = ["Camille", "Louis", "Manon", "Hugo", "Léa", "Jules"]
NAMES_DE = ["Lukas", "Mia", "Jonas", "Lena", "Felix", "Hannah"]
NAMES_ES = ["Lucía", "Mateo", "Sofía", "Diego", "Carmen", "Pablo"]
TOWNS = ["Ashford", "Bramley", "Caldwell", "Dunmore", "Elmstead", "Fernhill", "Glenroy", "Hartwell", "Ivybridge",
         "Kettering", "Langley", "Millbrook", "Northam", "Oakhurst", "Penrith", "Redcliffe", "Stanway", "Thornbury"]
CITIES_ZH = ["杭州", "成都", "西安", "青岛", "昆明", "厦门", "南京", "武汉"]
CITIES_FR = ["Lyon", "Nantes", "Lille", "Rennes", "Dijon"]
CITIES_DE = ["Köln", "Bremen", "Leipzig", "Freiburg", "Münster"]
CITIES_ES = ["Sevilla", "Valencia", "Bilbao", "Granada", "Zaragoza"]
PLACES = ["garden", "allotment", "back yard", "orchard", "square", "park", "shed", "high street", "harbour"]
VEG = ["carrots", "beans", "lettuces", "onions", "potatoes", "courgettes", "leeks", "radishes", "peas"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_ZH = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期天"]
DAYS_FR = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
DAYS_DE = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábados", "domingos"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
RIVERS = ["Alder", "Brent", "Colne", "Dove", "Eden", "Frome", "Wey", "Teme", "Lune", "Otter", "Kennet", "Ure"]
REGIONS = ["northern uplands", "western vale", "southern downs", "eastern fens", "central hills", "coastal plain"]
ROADS = ["drovers'", "salt", "Roman", "coaching", "pilgrims'", "market"]
SAINTS = ["Mary", "Peter", "Andrew", "Michael", "Helen", "John", "Margaret", "Giles"]
CENTURIES = ["twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth"]
MATERIALS = ["limestone", "sandstone", "flint", "brick", "granite", "timber-framed"]
INDUSTRIES = ["brewing", "paper", "wool", "glove", "rope", "brick", "leather", "timber"]
TWINS = ["Saint-Aubin", "Bad Lindau", "Vilanova", "Oostburg", "Lakeside", "Porto Alto"]
GROUNDS = ["Meadow", "Mill", "Station", "Victoria", "Church", "Riverside"]
