"""Generate chapter 11's Chinese corpus: short everyday stories composed from hand-written words and sentence patterns.

    python data/chinese/make_chinese.py            # rewrites train.txt and heldout.txt here (same bytes every time)
    python data/chinese/make_chinese.py --check    # only checks that the files here are what the script makes

Every word list and sentence pattern below was written for minigpt (nothing is copied from another text or data
set), and the files are CC0 like the rest of data/ (see data/README.md). A document is one small story about a person
of a little town on one day: a title line, then sentences drawn from the patterns with their slots filled by a
seeded random.Random, so the files are the same on every machine and Python version. `train.txt` (seed 11) teaches
the tokenizer and the model; `heldout.txt` (seed 2011) uses the same words and patterns in other combinations, so it
measures the model on unseen sentences of the same kind of text. Documents are separated by a blank line.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_SEED, HELDOUT_SEED = 11, 2011
TRAIN_DOCUMENTS, HELDOUT_DOCUMENTS = 1100, 110

# ---- hand-written words --------------------------------------------------------------------------------------

PEOPLE = ["小明", "小红", "李老师", "王奶奶", "张师傅", "陈医生", "刘阿姨", "林小雨", "赵大山", "周晓月", "吴老板",
          "孙小花", "郑爷爷", "何同学", "马叔叔", "黄小兵", "高阿婆", "钱先生", "许姐姐", "邓小川"]
PLACES = ["学校", "图书馆", "菜市场", "河边", "山坡上", "公园", "火车站", "书店", "医院", "面包店", "码头", "花园",
          "稻田边", "小卖部", "广场", "老桥上", "邮局", "茶馆", "果园", "灯塔下"]
TIMES = ["早上", "中午", "下午", "傍晚", "晚上", "星期一", "星期三", "周末", "昨天", "今天", "第二天", "那天清晨"]
SEASONS = ["春天", "夏天", "秋天", "冬天"]
WEATHER = ["下着小雨", "刮着大风", "阳光很好", "飘着雪花", "天气很冷", "天气很热", "起了大雾", "天空很蓝",
           "云很多", "空气很清新"]
THINGS = ["一本旧书", "两个苹果", "一把雨伞", "一辆自行车", "一只风筝", "一封信", "一袋面包", "一壶热茶", "一个闹钟",
          "一条小船", "一盏灯笼", "一张地图", "几张照片", "一顶帽子", "一篮鸡蛋", "一束野花", "一盒彩笔", "一双新鞋",
          "一罐蜂蜜", "一把钥匙"]
ANIMALS = ["小猫", "小狗", "小鸟", "鸭子", "兔子", "小鱼", "老牛", "山羊"]
FOODS = ["米饭", "面条", "饺子", "包子", "豆腐", "青菜", "鱼汤", "西瓜", "月饼", "粥"]
FEELINGS = ["很高兴", "有点难过", "非常安静", "特别开心", "有些紧张", "很满意", "十分惊讶", "很累", "很感动",
            "有点着急"]
SCENES = ["热闹", "安静", "干净", "漂亮", "古老", "温暖", "明亮", "凉快"]
ACTIVITIES = ["读书", "画画", "写日记", "唱歌", "下棋", "钓鱼", "种花", "做饭", "打扫房间", "修自行车", "放风筝",
              "散步", "洗衣服", "浇水", "包饺子", "练字"]
JOBS = ["卖菜", "教书", "看病", "修钟表", "开小店", "送信", "烤面包", "种果树"]
NUMBERS = ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十"]
HOURS = ["六点", "七点", "八点", "九点", "十点", "十二点", "两点", "三点", "五点", "六点半"]
SAYINGS = ["慢慢来，别着急", "今天的事今天做", "多读书总是好的", "帮助别人也是帮助自己", "明天会更好",
           "小事也要认真做", "朋友就是要互相帮忙", "下雨天也有下雨天的乐趣"]

# ---- hand-written sentence patterns ----------------------------------------------------------------------------
# {p} and {q} are two different people; the other slots are filled from the list of the same name.

OPENINGS = [
    "{time}，{weather}，{p}很早就起床了。",
    "{season}的{time}，小镇上{weather}。",
    "{p}住在{place}附近，每天都要走过那里。",
    "{time}{hour}，{p}推开窗户，看见外面{weather}。",
    "{p}是小镇上{job}的人，大家都认识{pron}。",
    "这是一个{season}的{time}，{p}觉得心里{feeling}。",
]
MIDDLES = [
    "{p}带着{thing}去了{place}。",
    "在{place}，{p}遇见了{q}。",
    "{q}问{p}：“你今天打算做什么？”",
    "{p}回答说：“我想去{place}{activity}。”",
    "{p}和{q}一起在{place}{activity}。",
    "路上，{p}看见一只{animal}在{place}旁边跑来跑去。",
    "{p}买了{thing}，准备送给{q}。",
    "{q}笑着说：“谢谢你，我{feeling}。”",
    "{place}今天特别{scene}，很多人在那里{activity}。",
    "{p}想起{q}说过的一句话：“{saying}。”",
    "中午，{p}吃了一碗{food}，又喝了{thing2}。",
    "{p}数了数，口袋里还有{num}块钱。",
    "{q}在{place}{job}，已经做了{num}年。",
    "{p}把{thing}放在桌子上，然后开始{activity}。",
    "因为{weather}，{p}决定不去{place}了。",
    "{p}在{place}等了{num}分钟，{q}才来。",
    "{q}告诉{p}，{place}旁边新开了一家小店。",
    "{p}一边走一边唱歌，{feeling}。",
    "那只{animal}跟着{p}一直走到{place}。",
    "{p}帮{q}搬了{num}箱东西，累得满头大汗。",
    "{p}在笔记本上写下：{season}的{place}真{scene}。",
    "{q}的{animal}不见了，{p}陪{pron2}找了很久。",
    "最后，他们在{place}找到了那只{animal}。",
    "{p}发现{thing}丢了，心里{feeling}。",
    "{q}把{thing}还给了{p}，说是在{place}捡到的。",
    "{p}请{q}到家里吃{food}。",
    "桌上有{food}、{food2}，还有{thing2}。",
    "{hour}的时候，{place}的钟响了{num}下。",
    "{p}问{q}：“{place}怎么走？”",
    "{q}指着前面说：“一直往前走，过了{place}就到了。”",
    "{p}第一次来{place}，觉得这里很{scene}。",
    "{q}给{p}讲了一个关于{animal}的故事。",
    "孩子们在{place}{activity}，笑声传得很远。",
    "{p}每天{hour}去{place}，从来没有迟到过。",
    "{q}说{pron}明天还要去{place}{activity}。",
]
ENDINGS = [
    "晚上，{p}回到家，{feeling}地睡着了。",
    "{p}觉得今天过得{feeling2}。",
    "回家的路上，{weather}，{p}走得很慢。",
    "{p}在日记里写道：“{saying}。”",
    "第二天，{p}又去了{place}。",
    "这就是{p}在{place}的一天。",
]
TITLES = ["{p}的{time}", "{place}的故事", "{season}里的{p}", "{p}和{animal}", "去{place}", "{p}的{thing_short}"]
THINGS_SHORT = ["雨伞", "风筝", "旧书", "自行车", "照片", "灯笼", "地图", "钥匙"]
DRINKS = ["一杯热茶", "一碗汤", "一杯牛奶", "一杯豆浆"]
FEELINGS_AFTER = ["很充实", "很愉快", "有点累，但是很开心", "和平常不一样", "特别有意思"]


def _fill(pattern: str, rng: random.Random, p: str, q: str) -> str:
    """A pattern with its slots filled; {pron} is 他 or 她 by a coin (the names do not say), {pron2} likewise."""
    slots = {"p": p, "q": q, "time": rng.choice(TIMES), "season": rng.choice(SEASONS), "weather": rng.choice(WEATHER),
             "place": rng.choice(PLACES), "hour": rng.choice(HOURS), "job": rng.choice(JOBS),
             "feeling": rng.choice(FEELINGS), "feeling2": rng.choice(FEELINGS_AFTER), "thing": rng.choice(THINGS),
             "thing2": rng.choice(DRINKS), "activity": rng.choice(ACTIVITIES), "animal": rng.choice(ANIMALS),
             "scene": rng.choice(SCENES), "saying": rng.choice(SAYINGS), "food": rng.choice(FOODS),
             "food2": rng.choice(FOODS), "num": rng.choice(NUMBERS), "pron": rng.choice("他她"),
             "pron2": rng.choice("他她"), "thing_short": rng.choice(THINGS_SHORT)}
    return pattern.format(**slots)


def document(rng: random.Random) -> str:
    """One story: a title, an opening, 6-14 middle sentences in paragraphs of 2-4, an ending."""
    p, q = rng.sample(PEOPLE, 2)
    title = _fill(rng.choice(TITLES), rng, p, q)
    sentences = [_fill(rng.choice(OPENINGS), rng, p, q)]
    sentences += [_fill(pattern, rng, p, q) for pattern in rng.sample(MIDDLES, rng.randint(6, 14))]
    sentences.append(_fill(rng.choice(ENDINGS), rng, p, q))
    paragraphs, start = [], 0
    while start < len(sentences):
        size = rng.randint(2, 4)
        paragraphs.append("".join(sentences[start:start + size]))
        start += size
    return title + "\n" + "\n".join(paragraphs)


def corpus(seed: int, documents: int) -> str:
    """`documents` stories from random.Random(seed), separated by blank lines, ending with a newline."""
    rng = random.Random(seed)
    return "\n\n".join(document(rng) for _ in range(documents)) + "\n"


FILES = {"train.txt": (TRAIN_SEED, TRAIN_DOCUMENTS), "heldout.txt": (HELDOUT_SEED, HELDOUT_DOCUMENTS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the files instead of writing them")
    args = parser.parse_args(argv)
    for name, (seed, count) in FILES.items():
        text, path = corpus(seed, count), HERE / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                print(f"{path} is not what make_chinese.py makes; run it without --check", file=sys.stderr)
                return 1
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8", newline="\n")
            tmp.replace(path)   # atomic: a reader sees the old file or the new one
        print(f"{name}: {count} documents, {len(text):,} characters, {len(text.encode('utf-8')):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
