"""A realistic synthetic Lomevexi store: the input the governance jobs are developed and tested on.

``seed_store`` fills an empty store database (SQLite or PostgreSQL, the contract in
``sql/store_schema.sql``) with customers, three years of orders and their items, payments,
shipments and after-service tickets, legal holds, four months of staff access events and
half a year of storefront visits. Everything is computed from the arguments only, so the same
``(orders, as_of, years, seed)`` gives the same rows on every machine and on both dialects.

The data is *clean by default*: every value follows the contract and the policy
(``policy.yaml``): enumerations, formats (phone, postal code, last four card digits), e-mail
addresses only in ``customers.email``, no card numbers anywhere, every staff access event
inside the role matrix and the business hours. Tests and demos add the dirty cases on purpose.

What the retention and audit jobs need to find is there:

* completed orders spread over the whole period: with the policy's 365-day retention about
  half of them are past retention at ``as_of``, a few are within seconds, hours or days of the
  boundary (some exactly on it, some with microseconds),
* legal holds (on orders and on customers, active and released) and tickets still open on old
  orders, which protect past-retention orders from the purge,
* recent orders still placed, shipped or delivered, with ``completed_at`` NULL.

Scale: rows are generated in fixed chunks of :data:`ORDER_CHUNK` orders with numpy and pyarrow
and loaded with ``COPY`` (PostgreSQL: one transaction, in a background thread while the next
chunk is generated; with ``create`` the keys, foreign keys and indexes are added after the
load) or ``executemany`` (SQLite: one transaction per chunk, indexes after the load). Memory
is bounded by the chunk size. The chunk size is part of the data: changing it changes the rows.
2,000,000 orders (about 20 million rows in all) load into PostgreSQL in about a minute.

Command line (prints row counts only, never a customer value)::

    python -m lomevexi_governance.seed --db sqlite:////abs/store.db --orders 5000 --as-of 2026-11-24
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lomevexi_governance import db
from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.policy import Policy, load_policy
from lomevexi_governance.settings import DatabaseTarget, target_from_uri

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("sql") / "store_schema.sql"

#: Tables of the store contract, parents before children (load order).
TABLES = (
    "customers",
    "orders",
    "order_items",
    "payments",
    "shipments",
    "service_tickets",
    "legal_holds",
    "staff_access_log",
    "site_visits",
)

#: Orders generated (and loaded) per chunk. Part of the data's identity: see the module doc.
ORDER_CHUNK = 50_000
#: Staff access events per generated chunk (whole days are never split).
EVENT_CHUNK = 200_000
#: Storefront sessions per generated chunk.
SESSION_CHUNK = 100_000

US = 1_000_000
MINUTE = 60 * US
HOUR = 3600 * US
DAY = 86_400 * US
JST = 9 * HOUR  # Japan has no daylight saving time: JST is always UTC+9

#: Orders per day grow linearly over the period, to (1 + GROWTH) times the first day's rate.
#: With GROWTH = 2 and three years, about half of the closed orders are past a 365-day retention.
GROWTH = 2.0
#: Customers register up to this long before the first order of the period.
CUSTOMER_LEAD = 90 * DAY
#: How far back staff access events and storefront visits go.
ACCESS_LOG_DAYS = 120
SITE_VISIT_DAYS = 200
#: Offsets from the retention boundary (``as_of - retention``) given to a few completed orders.
BOUNDARY_OFFSETS_US = (
    -3 * DAY, -2 * HOUR, -US, 0, 1, 250_000, US, 2 * HOUR, 3 * DAY,
)
BOUNDARY_PER_CHUNK = 9
#: Share of timestamps that carry a fraction of a second.
FRACTION_SHARE = 0.10
BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------

# Family names (kanji, romaji), most common first.
FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"), ("伊藤", "ito"),
    ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"), ("小林", "kobayashi"),
    ("加藤", "kato"), ("吉田", "yoshida"), ("山田", "yamada"), ("佐々木", "sasaki"), ("山口", "yamaguchi"),
    ("松本", "matsumoto"), ("井上", "inoue"), ("木村", "kimura"), ("林", "hayashi"), ("斎藤", "saito"),
    ("清水", "shimizu"), ("山崎", "yamazaki"), ("森", "mori"), ("池田", "ikeda"), ("橋本", "hashimoto"),
    ("阿部", "abe"), ("石川", "ishikawa"), ("山下", "yamashita"), ("中島", "nakajima"), ("石井", "ishii"),
    ("小川", "ogawa"), ("前田", "maeda"), ("岡田", "okada"), ("長谷川", "hasegawa"), ("藤田", "fujita"),
    ("後藤", "goto"), ("近藤", "kondo"), ("村上", "murakami"), ("遠藤", "endo"), ("青木", "aoki"),
    ("坂本", "sakamoto"), ("斉藤", "saito"), ("福田", "fukuda"), ("太田", "ota"), ("西村", "nishimura"),
    ("藤井", "fujii"), ("金子", "kaneko"), ("岡本", "okamoto"), ("藤原", "fujiwara"), ("中野", "nakano"),
    ("三浦", "miura"), ("原田", "harada"), ("中川", "nakagawa"), ("松田", "matsuda"), ("竹内", "takeuchi"),
    ("小野", "ono"), ("田村", "tamura"), ("中山", "nakayama"), ("和田", "wada"), ("石田", "ishida"),
    ("森田", "morita"), ("上田", "ueda"), ("原", "hara"), ("内田", "uchida"), ("柴田", "shibata"),
    ("酒井", "sakai"), ("宮崎", "miyazaki"), ("横山", "yokoyama"), ("高木", "takagi"), ("安藤", "ando"),
    ("宮本", "miyamoto"), ("大野", "ono"), ("小島", "kojima"), ("谷口", "taniguchi"), ("今井", "imai"),
    ("工藤", "kudo"), ("高田", "takada"), ("増田", "masuda"), ("丸山", "maruyama"), ("杉山", "sugiyama"),
    ("村田", "murata"), ("大塚", "otsuka"), ("新井", "arai"), ("小山", "koyama"), ("平野", "hirano"),
    ("藤本", "fujimoto"), ("河野", "kono"), ("上野", "ueno"), ("野口", "noguchi"), ("武田", "takeda"),
    ("松井", "matsui"), ("千葉", "chiba"), ("岩崎", "iwasaki"), ("菅原", "sugawara"), ("木下", "kinoshita"),
    ("久保", "kubo"), ("佐野", "sano"), ("野村", "nomura"), ("松尾", "matsuo"), ("菊地", "kikuchi"),
    ("杉本", "sugimoto"), ("市川", "ichikawa"), ("古川", "furukawa"), ("大西", "onishi"), ("島田", "shimada"),
    ("水野", "mizuno"), ("桜井", "sakurai"), ("高野", "takano"), ("渡部", "watanabe"), ("吉川", "yoshikawa"),
    ("山内", "yamauchi"), ("西田", "nishida"), ("飯田", "iida"), ("菊池", "kikuchi"), ("西川", "nishikawa"),
    ("小松", "komatsu"), ("北村", "kitamura"), ("安田", "yasuda"),
    ("五十嵐", "igarashi"), ("川口", "kawaguchi"),
    ("平田", "hirata"), ("関", "seki"), ("中田", "nakata"), ("久保田", "kubota"), ("服部", "hattori"),
    ("東", "higashi"), ("岩田", "iwata"), ("土屋", "tsuchiya"), ("川崎", "kawasaki"), ("福島", "fukushima"),
    ("本田", "honda"), ("辻", "tsuji"), ("樋口", "higuchi"), ("秋山", "akiyama"), ("田口", "taguchi"),
    ("永井", "nagai"), ("山中", "yamanaka"), ("中西", "nakanishi"),
    ("吉村", "yoshimura"), ("川上", "kawakami"),
    ("大橋", "ohashi"), ("石原", "ishihara"), ("松岡", "matsuoka"), ("浜田", "hamada"), ("馬場", "baba"),
    ("森本", "morimoto"), ("矢野", "yano"), ("浅野", "asano"), ("松下", "matsushita"), ("星野", "hoshino"),
    ("大久保", "okubo"), ("吉岡", "yoshioka"), ("小池", "koike"), ("野田", "noda"), ("荒木", "araki"),
    ("大谷", "otani"), ("内藤", "naito"), ("松浦", "matsuura"), ("熊谷", "kumagai"), ("黒田", "kuroda"),
    ("尾崎", "ozaki"), ("永田", "nagata"), ("川村", "kawamura"), ("望月", "mochizuki"), ("田辺", "tanabe"),
)

# Given names (kanji, romaji). An apparel store: about 70 % of the customers are women.
GIVEN_NAMES_FEMALE: tuple[tuple[str, str], ...] = (
    ("陽菜", "hina"), ("結衣", "yui"), ("葵", "aoi"),
    ("美咲", "misaki"), ("花子", "hanako"), ("さくら", "sakura"),
    ("愛", "ai"), ("彩", "aya"), ("真由美", "mayumi"),
    ("恵子", "keiko"), ("由美子", "yumiko"), ("久美子", "kumiko"),
    ("直美", "naomi"), ("明美", "akemi"), ("優子", "yuko"),
    ("裕子", "yuko"), ("智子", "tomoko"), ("洋子", "yoko"),
    ("幸子", "sachiko"), ("和子", "kazuko"), ("美穂", "miho"),
    ("麻衣", "mai"), ("舞", "mai"), ("千尋", "chihiro"),
    ("沙織", "saori"), ("香織", "kaori"), ("恵", "megumi"),
    ("美香", "mika"), ("奈々", "nana"), ("彩花", "ayaka"),
    ("遥", "haruka"), ("七海", "nanami"), ("美月", "mizuki"),
    ("凛", "rin"), ("莉子", "riko"), ("芽依", "mei"),
    ("杏", "an"), ("楓", "kaede"), ("紗希", "saki"), ("瑞希", "mizuki"), ("亜美", "ami"), ("理恵", "rie"),
    ("綾乃", "ayano"), ("菜々子", "nanako"), ("真央", "mao"),
    ("結菜", "yuna"), ("朋美", "tomomi"), ("由佳", "yuka"),
    ("絵美", "emi"), ("春香", "haruka"), ("詩織", "shiori"),
    ("友美", "tomomi"), ("早紀", "saki"), ("桃子", "momoko"),
)
GIVEN_NAMES_MALE: tuple[tuple[str, str], ...] = (
    ("翔太", "shota"), ("大輔", "daisuke"), ("健太", "kenta"), ("拓也", "takuya"), ("直樹", "naoki"),
    ("和也", "kazuya"), ("達也", "tatsuya"), ("誠", "makoto"), ("浩", "hiroshi"), ("隆", "takashi"),
    ("健一", "kenichi"), ("修", "osamu"), ("剛", "tsuyoshi"), ("亮", "ryo"), ("蓮", "ren"), ("悠真", "yuma"),
    ("湊", "minato"), ("陽翔", "haruto"), ("大和", "yamato"),
    ("颯太", "sota"), ("優斗", "yuto"), ("翼", "tsubasa"),
    ("一郎", "ichiro"), ("健二", "kenji"), ("聡", "satoshi"), ("学", "manabu"), ("徹", "toru"), ("淳", "jun"),
    ("雄太", "yuta"), ("陸", "riku"), ("海斗", "kaito"),
    ("樹", "itsuki"), ("大翔", "hiroto"), ("智也", "tomoya"),
    ("康介", "kosuke"), ("慎也", "shinya"), ("将太", "shota"),
    ("光", "hikaru"), ("悟", "satoru"), ("航", "wataru"),
)
FEMALE_SHARE = 0.70

# Prefectures: (population in units of 10,000 people, postal code prefix range, landline area code).
# Prefectures without an area code here get mobile numbers only.
PREFECTURE_INFO: dict[str, tuple[int, tuple[int, int], str | None]] = {
    "北海道": (510, (40, 99), "011"), "青森県": (120, (30, 39), None),
    "岩手県": (118, (20, 29), None), "宮城県": (228, (980, 989), "022"),
    "秋田県": (93, (10, 19), None), "山形県": (104, (990, 999), None),
    "福島県": (180, (960, 979), None), "茨城県": (284, (300, 319), "029"),
    "栃木県": (191, (320, 329), "028"), "群馬県": (191, (370, 379), "027"),
    "埼玉県": (734, (330, 369), "048"), "千葉県": (628, (260, 299), "043"),
    "東京都": (1404, (100, 208), "03"), "神奈川県": (923, (210, 259), "045"),
    "新潟県": (214, (940, 959), "025"), "富山県": (102, (930, 939), "076"),
    "石川県": (111, (920, 929), "076"), "福井県": (75, (910, 919), None),
    "山梨県": (80, (400, 409), "055"), "長野県": (201, (380, 399), "026"),
    "岐阜県": (194, (500, 509), "058"), "静岡県": (355, (410, 439), "054"),
    "愛知県": (748, (440, 498), "052"), "三重県": (174, (510, 519), "059"),
    "滋賀県": (141, (520, 529), "077"), "京都府": (255, (600, 629), "075"),
    "大阪府": (877, (530, 599), "06"), "兵庫県": (540, (650, 679), "078"),
    "奈良県": (131, (630, 639), None), "和歌山県": (90, (640, 649), "073"),
    "鳥取県": (54, (680, 689), None), "島根県": (65, (690, 699), None),
    "岡山県": (184, (700, 719), "086"), "広島県": (276, (720, 739), "082"),
    "山口県": (131, (740, 759), "083"), "徳島県": (70, (770, 779), "088"),
    "香川県": (93, (760, 769), "087"), "愛媛県": (131, (790, 799), "089"),
    "高知県": (67, (780, 789), "088"), "福岡県": (510, (800, 839), "092"),
    "佐賀県": (80, (840, 849), None), "長崎県": (128, (850, 859), "095"),
    "熊本県": (172, (860, 869), "096"), "大分県": (111, (870, 879), "097"),
    "宮崎県": (105, (880, 889), None), "鹿児島県": (156, (890, 899), "099"),
    "沖縄県": (147, (900, 909), "098"),
}

# Cities and wards (市区町村) per prefecture; a city may name its own towns (町名), otherwise
# the generic town list is used.
CITIES: dict[str, tuple[str, ...]] = {
    "北海道": ("札幌市中央区", "札幌市北区", "旭川市", "函館市", "帯広市", "小樽市"),
    "青森県": ("青森市", "八戸市", "弘前市"),
    "岩手県": ("盛岡市", "一関市", "奥州市"),
    "宮城県": ("仙台市青葉区", "仙台市泉区", "石巻市", "名取市"),
    "秋田県": ("秋田市", "横手市", "大仙市"),
    "山形県": ("山形市", "鶴岡市", "米沢市"),
    "福島県": ("郡山市", "いわき市", "福島市", "会津若松市"),
    "茨城県": ("水戸市", "つくば市", "日立市", "ひたちなか市"),
    "栃木県": ("宇都宮市", "小山市", "栃木市", "足利市"),
    "群馬県": ("前橋市", "高崎市", "太田市", "伊勢崎市"),
    "埼玉県": ("さいたま市浦和区", "さいたま市大宮区", "川口市", "川越市", "所沢市", "越谷市"),
    "千葉県": ("千葉市中央区", "船橋市", "松戸市", "市川市", "柏市", "浦安市"),
    "東京都": ("渋谷区", "世田谷区", "新宿区", "港区", "目黒区", "杉並区", "練馬区", "江東区", "品川区",
             "中野区", "武蔵野市", "八王子市", "町田市", "調布市"),
    "神奈川県": (
        "横浜市港北区", "横浜市青葉区", "横浜市中区", "川崎市中原区", "相模原市中央区", "藤沢市", "鎌倉市",
    ),
    "新潟県": ("新潟市中央区", "長岡市", "上越市"),
    "富山県": ("富山市", "高岡市", "射水市"),
    "石川県": ("金沢市", "白山市", "小松市"),
    "福井県": ("福井市", "坂井市", "越前市"),
    "山梨県": ("甲府市", "甲斐市", "南アルプス市"),
    "長野県": ("長野市", "松本市", "上田市"),
    "岐阜県": ("岐阜市", "大垣市", "各務原市"),
    "静岡県": ("静岡市葵区", "浜松市中央区", "沼津市", "富士市"),
    "愛知県": ("名古屋市中区", "名古屋市千種区", "豊田市", "岡崎市", "一宮市", "豊橋市"),
    "三重県": ("津市", "四日市市", "鈴鹿市"),
    "滋賀県": ("大津市", "草津市", "彦根市"),
    "京都府": ("京都市中京区", "京都市左京区", "宇治市", "京田辺市"),
    "大阪府": ("大阪市北区", "大阪市中央区", "大阪市天王寺区", "堺市堺区", "豊中市", "吹田市", "枚方市"),
    "兵庫県": ("神戸市中央区", "神戸市東灘区", "西宮市", "姫路市", "尼崎市", "芦屋市"),
    "奈良県": ("奈良市", "橿原市", "生駒市"),
    "和歌山県": ("和歌山市", "田辺市", "橋本市"),
    "鳥取県": ("鳥取市", "米子市", "倉吉市"),
    "島根県": ("松江市", "出雲市", "浜田市"),
    "岡山県": ("岡山市北区", "倉敷市", "津山市"),
    "広島県": ("広島市中区", "広島市南区", "福山市", "東広島市"),
    "山口県": ("山口市", "下関市", "宇部市"),
    "徳島県": ("徳島市", "阿南市", "鳴門市"),
    "香川県": ("高松市", "丸亀市", "観音寺市"),
    "愛媛県": ("松山市", "今治市", "新居浜市"),
    "高知県": ("高知市", "南国市", "四万十市"),
    "福岡県": ("福岡市中央区", "福岡市博多区", "福岡市早良区", "北九州市小倉北区", "久留米市"),
    "佐賀県": ("佐賀市", "唐津市", "鳥栖市"),
    "長崎県": ("長崎市", "佐世保市", "諫早市"),
    "熊本県": ("熊本市中央区", "八代市", "天草市"),
    "大分県": ("大分市", "別府市", "中津市"),
    "宮崎県": ("宮崎市", "都城市", "延岡市"),
    "鹿児島県": ("鹿児島市", "霧島市", "薩摩川内市"),
    "沖縄県": ("那覇市", "沖縄市", "うるま市", "浦添市"),
}
CITY_TOWNS: dict[str, tuple[str, ...]] = {
    "渋谷区": ("神南", "道玄坂", "恵比寿", "代々木", "広尾", "神宮前", "宇田川町", "桜丘町"),
    "世田谷区": ("三軒茶屋", "太子堂", "経堂", "成城", "桜新町", "用賀", "下北沢", "池尻"),
    "新宿区": ("西新宿", "高田馬場", "神楽坂", "四谷", "大久保", "早稲田町", "市谷本村町"),
    "港区": ("六本木", "麻布十番", "白金", "芝浦", "赤坂", "南青山", "高輪"),
    "目黒区": ("自由が丘", "中目黒", "祐天寺", "碑文谷", "八雲", "駒場"),
    "杉並区": ("高円寺南", "阿佐谷北", "荻窪", "西荻南", "永福"),
    "品川区": ("大崎", "五反田", "戸越", "旗の台", "東品川"),
    "大阪市北区": ("梅田", "中崎", "天神橋", "茶屋町", "堂島"),
    "大阪市中央区": ("心斎橋筋", "難波", "谷町", "本町", "北浜"),
    "京都市中京区": ("河原町", "烏丸", "西ノ京", "壬生"),
    "横浜市中区": ("山下町", "元町", "本牧", "関内", "山手町"),
    "福岡市中央区": ("天神", "大名", "薬院", "今泉", "警固"),
    "札幌市中央区": ("大通西", "南一条西", "北三条西", "円山", "宮の森"),
    "名古屋市中区": ("栄", "錦", "大須", "丸の内", "新栄"),
}
GENERIC_TOWNS = (
    "本町", "栄町", "中央", "緑町", "旭町", "幸町", "桜台", "南町", "東町", "西町", "北町", "新町", "元町",
    "大手町", "錦町", "若葉", "青葉台", "松原", "宮前", "日吉", "春日", "若松町", "寿町", "住吉町", "曙町",
    "柳町", "朝日町", "昭和町", "平和町", "泉町", "富士見", "高砂", "八幡町", "相生町", "港町", "浜町",
    "神明町", "天神町", "宮町", "花園", "常盤町", "末広町", "千代田", "弥生町", "中町", "田町", "本郷",
    "緑が丘", "桜ケ丘", "希望ケ丘", "みずほ台", "ひばりが丘", "つつじが丘", "美園", "駅前", "城東", "城西",
)
BUILDING_NAMES = (
    "グランメゾン", "パークハウス", "ライオンズマンション", "コーポ", "ハイツ", "メゾン", "レジデンス",
    "シティハイツ", "サンハイツ", "ロイヤルパレス", "エステート", "プラウド", "クレスト", "アーバンパーク",
    "パレス", "ヴィラ", "カーサ", "リバーサイド", "グリーンヒル", "ステーションプラザ", "サンライズ",
    "ベルメゾン", "フォレスト", "アルカディア",
)
BUILDING_SUFFIXES = ("", "", "", "", "", "", "II", "III", "壱番館", "弐番館", "イースト", "ウエスト")

EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 30), ("yahoo.co.jp", 20), ("icloud.com", 15), ("docomo.ne.jp", 6), ("ezweb.ne.jp", 4),
    ("softbank.ne.jp", 4), ("outlook.jp", 4), ("hotmail.co.jp", 3), ("outlook.com", 3), ("nifty.com", 2),
    ("biglobe.ne.jp", 2), ("au.com", 2), ("me.com", 2), ("ocn.ne.jp", 2), ("i.softbank.jp", 1),
)

CATEGORY_CODES = {
    "tops": "TP", "pants": "PT", "dresses": "DR", "sweaters": "SW", "accessories": "AC", "footwear": "FW",
}
# Styles per category with their list price (yen).
STYLES: dict[str, tuple[tuple[str, int], ...]] = {
    "tops": (
        ("オーガニックコットンTシャツ", 2990), ("オックスフォードシャツ", 4990), ("リネンシャツ", 5990),
        ("フリルブラウス", 4990), ("ボーダーカットソー", 3490), ("鹿の子ポロシャツ", 3990),
        ("スウェットパーカー", 5990), ("バンドカラーシャツ", 4990), ("ワッフルロングTシャツ", 2990),
        ("シアーシャツ", 3990),
    ),
    "pants": (
        ("ワイドパンツ", 5990), ("テーパードパンツ", 5990), ("ストレートデニム", 7990), ("チノパンツ", 4990),
        ("センタープレススラックス", 6990), ("カーゴパンツ", 6990), ("ジョガーパンツ", 3990),
        ("リネンイージーパンツ", 4990),
    ),
    "dresses": (
        ("シャツワンピース", 7990), ("ニットワンピース", 9990), ("ティアードワンピース", 8990),
        ("キャミワンピース", 6990), ("ジャンパースカート", 7990), ("プリーツマキシワンピース", 12900),
    ),
    "sweaters": (
        ("クルーネックニット", 5990), ("Vネックカーディガン", 6990), ("ケーブルニット", 7990),
        ("タートルネックニット", 6990), ("カシミヤブレンドセーター", 14900), ("ニットベスト", 4990),
    ),
    "accessories": (
        ("コットンキャップ", 2990), ("バケットハット", 3490),
        ("レザーベルト", 4990), ("キャンバストートバッグ", 3990),
        ("ミニショルダーバッグ", 5990), ("ウールストール", 4990),
        ("ソックス3足セット", 1490), ("リブニット帽", 2490),
    ),
    "footwear": (
        ("キャンバススニーカー", 6990), ("レザースニーカー", 12900),
        ("ローファー", 14900), ("サイドゴアブーツ", 18900),
        ("ストラップサンダル", 7990), ("ポインテッドパンプス", 9990), ("スリッポン", 5990),
    ),
}
COLORS = (
    "ブラック", "ホワイト", "ネイビー", "グレー", "ベージュ", "ブラウン", "カーキ", "オリーブ", "アイボリー",
    "ブルー", "ライトブルー", "ピンク", "レッド", "ボルドー", "グリーン", "イエロー", "チャコール", "モカ",
)
APPAREL_SIZES = (("XS", 8), ("S", 25), ("M", 34), ("L", 23), ("XL", 10))
ACCESSORY_SIZES = (("S", 20), ("M", 60), ("L", 20))
SHOE_SIZES = tuple(
    (f"{s / 10:.1f}", w)
    for s, w in (
        (220, 2), (225, 4), (230, 8), (235, 12), (240, 12), (245, 10), (250, 8), (255, 7),
        (260, 8), (265, 9), (270, 8), (275, 6), (280, 4), (285, 2),
    )
)
NOVELTY = ("ノベルティ エコバッグ", "アイボリー", "M")  # a free gift: unit price 0

CARRIERS = (("yamato", 50), ("sagawa", 30), ("japan_post", 20))
PAYMENT_METHODS = (("credit_card", 58), ("konbini", 16), ("bank_transfer", 9), ("cash_on_delivery", 17))
CARD_BRANDS = (("visa", 45), ("mastercard", 25), ("jcb", 22), ("amex", 8))

# Hour-of-day profile (Asia/Tokyo) of orders and storefront visits.
SHOPPING_HOURS = (
    2.0, 1.2, 0.7, 0.4, 0.3, 0.4, 0.8, 1.5, 2.2, 2.8, 3.2, 3.5, 4.2, 4.0, 3.4, 3.3, 3.4, 3.6, 3.9, 4.6, 5.4,
    6.0, 5.6, 4.0,
)

# Staff: (id, role). Engineering has accounts but never touches customer data.
STAFF: tuple[tuple[str, str], ...] = (
    ("S0001", "customer_service"), ("S0002", "customer_service"), ("S0003", "logistics"),
    ("S0004", "customer_service"), ("S0005", "finance"), ("S0006", "customer_service"),
    ("S0007", "engineering"), ("S0008", "logistics"), ("S0009", "customer_service"),
    ("S0010", "security_admin"), ("S0011", "customer_service"), ("S0012", "finance"),
    ("S0013", "logistics"), ("S0014", "customer_service"), ("S0015", "engineering"),
    ("S0016", "customer_service"), ("S0017", "logistics"), ("S0018", "finance"),
    ("S0019", "security_admin"), ("S0020", "engineering"),
)
ROLE_ACTIVITY = {
    "customer_service": 1.0, "logistics": 0.9, "finance": 0.6, "security_admin": 0.2, "engineering": 0.0,
}
ROLE_SUBNET = {
    "customer_service": 11, "logistics": 12, "finance": 13, "engineering": 14, "security_admin": 15,
}
RESOURCE_POPULARITY = {
    "customers": 0.15, "orders": 0.35, "order_items": 0.12, "payments": 0.3, "shipments": 0.25,
    "service_tickets": 0.3,
}

DEVICES = (("mobile", 65), ("desktop", 28), ("tablet", 7))
BROWSERS = {
    "mobile": (("Safari", 55), ("Chrome", 35), ("Samsung Internet", 4), ("LINE", 6)),
    "desktop": (("Chrome", 62), ("Safari", 14), ("Edge", 18), ("Firefox", 6)),
    "tablet": (("Safari", 78), ("Chrome", 22)),
}
SEARCH_TERMS = (
    "knit", "wide-pants", "onepiece", "denim", "sneakers", "cardigan", "linen", "bag", "cap", "boots",
)

HOLD_REASONS = (
    "税務調査対応のため記録を保全（所轄税務署からの照会）",
    "訴訟対応: 商品の瑕疵をめぐる紛争のため記録を保全",
    "消費生活センターからのあっせん依頼への対応",
    "捜査関係事項照会書への対応のため保全",
    "カード会社からの不正利用調査依頼に伴う保全",
    "景品表示法に関する行政庁からの照会への対応",
    "損害賠償請求に関する記録保全（法務部指示）",
)

# After-service messages: (kind, subject, body). Placeholders: {style} {color} {size} {alt_size}
# {alt_color} {date} {wear} (着て, or 履いて for shoes). Polite Japanese (敬語), as customers write
# to the service mailbox.
TICKET_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("inquiry", "商品の発送状況について",
     "お世話になっております。\n{date}に注文した{style}（{color}、{size}サイズ）の発送状況を教えていただけますでしょうか。\n"
     "よろしくお願いいたします。"),
    ("inquiry", "サイズについての質問",
     "いつも利用させていただいております。{style}の{size}サイズを検討しているのですが、普段は{alt_size}を{wear}います。"
     "どちらがよいかアドバイスをいただけますと幸いです。"),
    ("inquiry", "お届け日時の変更について",
     "{date}に注文した商品のお届け日時を変更したいのですが、可能でしょうか。\nお手数ですがご対応をお願いいたします🙏"),
    ("inquiry", "注文内容の確認のお願い",
     "{date}に注文した{style}ですが、色を{color}で選んだか不安になりました。注文内容をご確認いただけますか。"),
    ("return", "返品のお願い",
     "先日届いた{style}（{color}）ですが、イメージと色味が異なっていたため返品させていただきたいです。"
     "未使用でタグも付いたままです。\n手続き方法を教えてください。"),
    ("return", "返品手続きについて",
     "{style}の{size}サイズを購入しましたが、サイズが合いませんでした。返品をお願いできますでしょうか。"),
    ("exchange", "サイズ交換のお願い",
     "{style}（{color}、{size}サイズ）を購入しましたが、少し小さかったので{alt_size}サイズに交換していただけますか。"
     "よろしくお願いいたします。"),
    ("exchange", "色違いへの交換について",
     "届いた{style}の色を{alt_color}に交換することは可能でしょうか。在庫があればお願いしたいです🙏"),
    ("warranty", "商品の不具合について",
     "{date}に購入した{style}（{color}）ですが、数回の着用で縫い目がほつれてしまいました。\n"
     "写真を添付しますので、ご確認いただけますでしょうか。"),
    ("warranty", "商品の破損について",
     "購入した{style}（{color}）に破れが見つかりました。修理または交換のご対応は可能でしょうか。"),
    ("complaint", "配送について",
     "{date}に注文した{style}が予定日を過ぎても届いておりません。至急ご確認をお願いいたします。"),
    ("complaint", "届いた商品の状態について",
     "届いた{style}（{color}）に汚れがありました。大変残念です。\nご対応をご検討いただけますでしょうか。"),
    ("data_request", "登録情報の開示について",
     "貴社が保有している私の個人情報の開示をお願いいたします。必要な手続きを教えてください。"),
)
UNLINKED_TICKET_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("inquiry", "会員登録について",
     "会員登録を済ませたのですが、確認メールが届きません。お手数ですがご確認をお願いいたします。"),
    ("inquiry", "再入荷の予定について",
     "{style}の{color}は再入荷の予定がありますでしょうか。{size}サイズを希望しております。"),
    ("inquiry", "ギフトラッピングについて",
     "プレゼント用に購入を考えています。ギフトラッピングはお願いできますでしょうか🙏"),
    ("data_request", "アカウント削除の依頼",
     "アカウントの削除を希望します。\n登録情報の取り扱いについてもご教示いただけますと幸いです。"),
    ("data_request", "個人情報の訂正のお願い",
     "登録している住所が古いままになっていました。訂正の方法を教えていただけますか。"),
    ("complaint", "メールマガジンについて",
     "配信停止の手続きをしたのですが、まだメールマガジンが届きます。ご確認をお願いいたします。"),
)
TICKET_CLOSINGS = ("", "", "", "\nよろしくお願いいたします。", "\n何卒よろしくお願い申し上げます。", " 🙏")
ATTACHMENT_KINDS = ("return", "exchange", "warranty", "complaint")


# --------------------------------------------------------------------------------------------
# Small vectorised helpers. numpy, pyarrow and psycopg are imported inside the functions that
# use them (TID253: importing this module stays cheap).
# --------------------------------------------------------------------------------------------


def _cumulative(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    import numpy as np

    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


def _pick(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Index drawn from a categorical distribution, given uniform floats ``u`` in [0, 1)."""
    import numpy as np

    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1).astype(np.int64)


_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    import numpy as np

    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX_1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX_2)
    return x ^ (x >> np.uint64(31))


class _Hashed:
    """Per-key pseudo-random attributes: the same key always gets the same values.

    Used for a customer's name, home address, phone and e-mail, so that every order shipped
    home carries the same recipient data, without keeping all customers in memory.
    """

    def __init__(self, keys: np.ndarray, seed: int, salt: int) -> None:
        import numpy as np

        base = _mix64(np.array([(seed * 1_000_003 + salt) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        self._h = _mix64(keys.astype(np.uint64) ^ base)

    def bits(self, k: int) -> np.ndarray:
        import numpy as np

        return _mix64(self._h ^ np.uint64((k * _GOLDEN) & 0xFFFFFFFFFFFFFFFF))

    def u(self, k: int) -> np.ndarray:
        import numpy as np

        return (self.bits(k) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def below(self, k: int, n: np.ndarray | int) -> np.ndarray:
        import numpy as np

        return (self.bits(k) % np.asarray(n, dtype=np.uint64)).astype(np.int64)


def _strs(values: Sequence[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    import pyarrow as pa

    return values.take(pa.array(idx, type=pa.int64()))


def _cat(*parts: Any) -> pa.Array:
    """Concatenate string arrays and literals element-wise (a NULL part gives NULL)."""
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(*parts, "")


def _num(values: np.ndarray, width: int = 0) -> pa.Array:
    """Integers as decimal strings, zero-padded to ``width``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    s = pc.cast(pa.array(values, type=pa.int64()), pa.string())
    return pc.utf8_lpad(s, width, "0") if width else s


def _where(mask: np.ndarray, a: Any, b: Any) -> pa.Array:
    """``a`` where ``mask`` else ``b`` (``None`` for NULL strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if b is None:
        b = pa.scalar(None, pa.string())
    return pc.if_else(pa.array(mask, type=pa.bool_()), a, b)


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm)."""
    import numpy as np

    z = days.astype(np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    for j in range(width):
        buf[:, col + width - 1 - j] = 48 + (values // 10**j) % 10


def _fixed_width_strings(rows: np.ndarray, lengths: np.ndarray | None, null: np.ndarray | None) -> pa.Array:
    """A string array from a (n, width) uint8 matrix; row i keeps its first ``lengths[i]`` bytes."""
    import numpy as np
    import pyarrow as pa

    n, width = rows.shape
    if lengths is None:
        data = rows.reshape(-1)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    else:
        keep = np.arange(width)[None, :] < lengths[:, None]
        data = rows[keep]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
    validity = None
    null_count = 0
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
        null_count = int(null.sum())
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data)), validity, null_count
    )


def format_timestamps(us: np.ndarray, null: np.ndarray | None = None, suffix: str = "") -> pa.Array:
    """UTC instants (microseconds since the epoch) as 'YYYY-MM-DD HH:MM:SS[.ffffff]' + ``suffix``.

    The fraction is written only when it is not zero, which is how the store's SQLite
    application writes timestamps.
    """
    import numpy as np

    us = us.astype(np.int64)
    n = len(us)
    sfx = suffix.encode("ascii")
    days = np.floor_divide(us, DAY)
    rem = us - days * DAY
    y, m, d = _civil(days)
    secs = rem // US
    frac = rem - secs * US
    buf = np.empty((n, 26 + len(sfx)), dtype=np.uint8)
    _put_digits(buf, 0, y, 4)
    buf[:, 4] = ord("-")
    _put_digits(buf, 5, m, 2)
    buf[:, 7] = ord("-")
    _put_digits(buf, 8, d, 2)
    buf[:, 10] = ord(" ")
    _put_digits(buf, 11, secs // 3600, 2)
    buf[:, 13] = ord(":")
    _put_digits(buf, 14, (secs // 60) % 60, 2)
    buf[:, 16] = ord(":")
    _put_digits(buf, 17, secs % 60, 2)
    has_frac = frac != 0
    buf[:, 19] = ord(".")
    _put_digits(buf, 20, frac, 6)
    if sfx:
        # the suffix goes right after the seconds when there is no fraction
        tail = np.frombuffer(sfx, dtype=np.uint8)
        buf[:, 26:] = tail
        plain = ~has_frac
        buf[plain, 19 : 19 + len(sfx)] = tail
    lengths = (19 + 7 * has_frac + len(sfx)).astype(np.int32)
    return _fixed_width_strings(buf, lengths, null)


def _fraction(rng: np.random.Generator, us: np.ndarray) -> np.ndarray:
    """Give about :data:`FRACTION_SHARE` of the instants a fraction of a second."""
    import numpy as np

    us = (us // US) * US
    has = rng.random(len(us)) < FRACTION_SHARE
    return us + np.where(has, rng.integers(1, US, len(us)), 0)


def _inverse_growth(p: np.ndarray) -> np.ndarray:
    """Inverse CDF on [0, 1) of a density growing linearly to (1 + GROWTH) times its start."""
    import numpy as np

    g = GROWTH
    return (-1.0 + np.sqrt(1.0 + 2.0 * g * p * (1.0 + g / 2.0))) / g


def _growth_cdf(x: np.ndarray | float) -> Any:
    import numpy as np

    x = np.clip(x, 0.0, 1.0)
    return (x + GROWTH * x * x / 2.0) / (1.0 + GROWTH / 2.0)


# --------------------------------------------------------------------------------------------
# The plan: everything derived from the arguments once
# --------------------------------------------------------------------------------------------

_STREAMS = {
    "customers": 1, "orders": 2, "holds": 3, "access": 4, "visits": 5, "catalog": 6, "customer_times": 7,
}
_SALT_PERSON = 11
_SALT_EMAIL = 12

ORDER_STATUSES = ("placed", "shipped", "delivered", "completed", "cancelled", "returned")
PAYMENT_STATUSES = ("authorized", "captured", "refunded", "failed")
SHIPMENT_STATUSES = ("pending", "shipped", "delivered", "returned")
TICKET_KINDS = ("inquiry", "return", "exchange", "warranty", "complaint", "data_request")
ACTIONS = ("view", "search", "export", "update")


@dataclass
class _Reference:
    """Reference data as arrays, built once per run."""

    family_kanji: Any
    family_romaji: Any
    family_cum: Any
    given_kanji: Any
    given_romaji: Any
    female_cum: Any
    male_cum: Any
    n_female: int
    prefectures: Any
    pref_cum: Any
    postal_lo: Any
    postal_hi: Any
    area_code: Any
    area_len: Any
    building_rate: Any
    city_off: Any
    city_cnt: Any
    cities: Any
    city_short: Any
    town_off: Any
    town_cnt: Any
    towns: Any
    buildings: Any
    building_suffixes: Any
    domains: Any
    domain_cum: Any
    categories: Any
    product_code: Any
    product_style: Any
    product_color: Any
    product_cat: Any
    product_price: Any
    product_cum: Any
    novelty: int
    size_names: Any
    size_sku: Any
    apparel_cum: Any
    accessory_cum: Any
    shoe_cum: Any
    shopping_cum: Any
    style_list: list[str] = field(default_factory=list)
    product_colors: list[str] = field(default_factory=list)
    size_list: list[str] = field(default_factory=list)


def _short_place(city: str) -> str:
    """渋谷区 -> 渋谷, さいたま市浦和区 -> 浦和, 四日市市 -> 四日市 (for building names)."""
    if city.endswith("区") and "市" in city:
        return city[city.index("市") + 1 : -1]
    return city[:-1]


def _build_reference(policy: Policy) -> _Reference:
    import numpy as np

    pref_names = list(policy.table("orders").column("prefecture").values or ())
    if set(pref_names) != set(PREFECTURE_INFO) or set(pref_names) != set(CITIES):
        raise ConfigurationError(
            "policy value set 'prefectures' does not match the seed's prefecture reference data "
            f"(policy has {len(pref_names)} values, the seed knows {len(PREFECTURE_INFO)})"
        )
    families = FAMILY_NAMES
    fam_w = 1.0 / np.arange(1, len(families) + 1) ** 0.6
    female, male = GIVEN_NAMES_FEMALE, GIVEN_NAMES_MALE
    urban = {"東京都": 0.65, "大阪府": 0.5, "神奈川県": 0.5, "埼玉県": 0.45, "千葉県": 0.45, "愛知県": 0.45,
             "京都府": 0.45, "兵庫県": 0.45, "福岡県": 0.45}

    city_list: list[str] = []
    city_off, city_cnt = [], []
    town_list: list[str] = []
    town_off, town_cnt = [], []
    for pref in pref_names:
        city_off.append(len(city_list))
        city_cnt.append(len(CITIES[pref]))
        for city in CITIES[pref]:
            city_list.append(city)
            towns = CITY_TOWNS.get(city, GENERIC_TOWNS)
            town_off.append(len(town_list))
            town_cnt.append(len(towns))
            town_list.extend(towns)

    # The catalogue is the same for every seed: product codes are stable.
    crng = np.random.default_rng([0, _STREAMS["catalog"]])
    codes, styles, colors, cats, prices = [], [], [], [], []
    categories = list(CATEGORY_CODES)
    for ci, cat in enumerate(categories):
        number = 0
        for style, price in STYLES[cat]:
            for color_i in crng.choice(len(COLORS), size=int(crng.integers(3, 7)), replace=False):
                number += 1
                codes.append(f"LMX-{CATEGORY_CODES[cat]}-{number:04d}")
                styles.append(style)
                colors.append(COLORS[int(color_i)])
                cats.append(ci)
                prices.append(price)
    novelty = len(codes)
    codes.append(f"LMX-{CATEGORY_CODES['accessories']}-9001")
    styles.append(NOVELTY[0])
    colors.append(NOVELTY[1])
    cats.append(categories.index("accessories"))
    prices.append(0)
    popularity = np.zeros(len(codes))
    popularity[:novelty] = 1.0 / (crng.permutation(novelty) + 1.0) ** 0.8  # the novelty is never drawn

    sizes = [s for s, _ in APPAREL_SIZES] + [s for s, _ in SHOE_SIZES]
    shop_w = np.asarray(SHOPPING_HOURS)
    return _Reference(
        family_kanji=_strs([k for k, _ in families]),
        family_romaji=_strs([r for _, r in families]),
        family_cum=_cumulative(fam_w),
        given_kanji=_strs([k for k, _ in female + male]),
        given_romaji=_strs([r for _, r in female + male]),
        female_cum=_cumulative([1.0] * len(female)),
        male_cum=_cumulative([1.0] * len(male)),
        n_female=len(female),
        prefectures=_strs(pref_names),
        pref_cum=_cumulative([PREFECTURE_INFO[p][0] for p in pref_names]),
        postal_lo=np.array([PREFECTURE_INFO[p][1][0] for p in pref_names], dtype=np.int64),
        postal_hi=np.array([PREFECTURE_INFO[p][1][1] for p in pref_names], dtype=np.int64),
        area_code=_strs([PREFECTURE_INFO[p][2] or "" for p in pref_names]),
        area_len=np.array([len(PREFECTURE_INFO[p][2] or "") for p in pref_names], dtype=np.int64),
        building_rate=np.array([urban.get(p, 0.3) for p in pref_names]),
        city_off=np.array(city_off, dtype=np.int64),
        city_cnt=np.array(city_cnt, dtype=np.int64),
        cities=_strs(city_list),
        city_short=_strs([_short_place(c) for c in city_list]),
        town_off=np.array(town_off, dtype=np.int64),
        town_cnt=np.array(town_cnt, dtype=np.int64),
        towns=_strs(town_list),
        buildings=_strs(BUILDING_NAMES),
        building_suffixes=_strs(BUILDING_SUFFIXES),
        domains=_strs([d for d, _ in EMAIL_DOMAINS]),
        domain_cum=_cumulative([w for _, w in EMAIL_DOMAINS]),
        categories=_strs(categories),
        product_code=_strs(codes),
        product_style=_strs(styles),
        product_color=_strs(colors),
        product_cat=np.array(cats, dtype=np.int64),
        product_price=np.array(prices, dtype=np.int64),
        product_cum=_cumulative(popularity),
        novelty=novelty,
        size_names=_strs(sizes),
        size_sku=_strs([s.replace(".", "") for s in sizes]),
        apparel_cum=_cumulative([w for _, w in APPAREL_SIZES]),
        accessory_cum=_cumulative([w for _, w in ACCESSORY_SIZES]),
        shoe_cum=_cumulative([w for _, w in SHOE_SIZES]),
        shopping_cum=_cumulative(shop_w),
        style_list=styles,
        product_colors=colors,
        size_list=sizes,
    )


@dataclass
class _Plan:
    policy: Policy
    ref: _Reference
    orders: int
    customers: int
    seed: int
    as_of: int  # microseconds since the epoch, UTC
    start: int
    span: int
    retention: int
    holidays: Any  # datetime64[D] array of national holidays
    cust_created: Any  # int64 us, ascending: customer_id = index + 1

    def rng(self, stream: str, index: int) -> np.random.Generator:
        import numpy as np

        return np.random.default_rng([self.seed, _STREAMS[stream], index])

    @property
    def boundary(self) -> int:
        """The retention boundary: orders completed at or before it are due at ``as_of``."""
        return self.as_of - self.retention


@dataclass
class _State:
    """Counters carried from one order chunk to the next (chunks are generated in order)."""

    next_item: int = 1
    next_payment: int = 1
    next_shipment: int = 1
    next_ticket: int = 1
    day_counts: dict[int, int] = field(default_factory=dict)
    boundary_i: int = 0
    forced_open_ticket: bool = False
    hold_old: list[Any] = field(default_factory=list)  # (order_id, customer_id, completed_at) arrays
    hold_recent: list[Any] = field(default_factory=list)  # (order_id, customer_id, ordered_at) arrays


@dataclass
class _Chunk:
    """Rows of one table: columns as numpy (int, ts: µs since the epoch) or pyarrow (str) arrays."""

    table: str
    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    nulls: list[Any] = field(default_factory=list)

    def integer(self, name: str, values: Any, null: Any = None) -> _Chunk:
        return self._add(name, "int", values, null)

    def timestamp(self, name: str, values: Any, null: Any = None) -> _Chunk:
        return self._add(name, "ts", values, null)

    def text(self, name: str, values: Any) -> _Chunk:
        return self._add(name, "str", values, None)

    def _add(self, name: str, kind: str, values: Any, null: Any) -> _Chunk:
        if self.values and len(values) != len(self.values[0]):
            raise AssertionError(f"{self.table}.{name}: {len(values)} values, expected {len(self.values[0])}")
        self.names.append(name)
        self.kinds.append(kind)
        self.values.append(values)
        self.nulls.append(null if null is None or null.any() else None)
        return self

    def __len__(self) -> int:
        return len(self.values[0]) if self.values else 0


@dataclass
class _OrderFrame:
    """One chunk of orders, as arrays: what the child tables are derived from."""

    order_id: Any
    customer_id: Any
    ordered_at: Any
    day: Any  # Japanese calendar day (days since the epoch)
    shipped: Any  # when it ships or would ship (only real when <= as_of)
    delivered: Any
    closed: Any  # when it closes or would close
    cancelled: Any
    returned: Any
    total: Any
    first_product: Any  # the first item's product and size (for ticket texts)
    first_size: Any
    as_of: int

    @property
    def is_closed(self) -> Any:
        return self.closed <= self.as_of

    @property
    def is_shipped(self) -> Any:
        return ~self.cancelled & (self.shipped <= self.as_of)

    @property
    def is_delivered(self) -> Any:
        return ~self.cancelled & (self.delivered <= self.as_of)


def _make_plan(policy: Policy, orders: int, as_of: dt.datetime, years: float, seed: int) -> _Plan:
    import holidays as holidays_lib
    import numpy as np

    as_of_us = _to_us(as_of)
    span = round(years * 365.25 * DAY)
    start = as_of_us - span
    retention = policy.retention["orders"].days * DAY if "orders" in policy.retention else 365 * DAY
    first_year = dt.datetime.fromtimestamp((start - CUSTOMER_LEAD) / US, tz=dt.UTC).year - 1
    country = policy.business_hours.holiday_country or "JP"
    cal = holidays_lib.country_holidays(country, years=range(first_year, as_of.year + 2))
    hol = np.array(sorted(cal), dtype="datetime64[D]")

    customers = max(1, round(orders / 3))
    rng = np.random.default_rng([seed, _STREAMS["customer_times"]])
    lo, hi = start - CUSTOMER_LEAD, as_of_us - HOUR
    p = (np.arange(customers) + rng.random(customers)) / customers
    created = lo + (_inverse_growth(p) * (hi - lo)).astype(np.int64)
    created = np.sort(_fraction(rng, created))
    created[0] = lo  # someone is registered before the first order, however few customers there are
    return _Plan(
        policy=policy,
        ref=_build_reference(policy),
        orders=orders,
        customers=customers,
        seed=seed,
        as_of=as_of_us,
        start=start,
        span=span,
        retention=retention,
        holidays=hol,
        cust_created=created,
    )


def _to_us(value: dt.datetime) -> int:
    delta = value.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


# --------------------------------------------------------------------------------------------
# People: names, addresses and phones derived from a key (customer id, or order id for gifts)
# --------------------------------------------------------------------------------------------


def _name_indices(ref: _Reference, h: _Hashed) -> tuple[Any, Any, Any]:
    import numpy as np

    female = h.u(0) < FEMALE_SHARE
    family = _pick(h.u(1), ref.family_cum)
    given = np.where(female, _pick(h.u(2), ref.female_cum), ref.n_female + _pick(h.u(2), ref.male_cum))
    return female, family, given


def _people(ref: _Reference, seed: int, keys: np.ndarray) -> dict[str, Any]:
    """Recipient name, phone and address per key: the same key always gives the same person."""
    h = _Hashed(keys, seed, _SALT_PERSON)
    _, family, given = _name_indices(ref, h)
    name = _cat(_take(ref.family_kanji, family), " ", _take(ref.given_kanji, given))
    pref = _pick(h.u(3), ref.pref_cum)
    city = ref.city_off[pref] + h.below(4, ref.city_cnt[pref])
    town = ref.town_off[city] + h.below(5, ref.town_cnt[city])
    line1 = _cat(
        _take(ref.towns, town), _num(1 + h.below(6, 6)), "-", _num(1 + h.below(7, 28)), "-",
        _num(1 + h.below(8, 22)),
    )
    has_building = h.u(9) < ref.building_rate[pref]
    room = (1 + h.below(10, 14)) * 100 + 1 + h.below(11, 10)
    building = _cat(
        _take(ref.buildings, h.below(12, len(ref.buildings))),
        _take(ref.city_short, city),
        _take(ref.building_suffixes, h.below(13, len(ref.building_suffixes))),
        " ",
        _num(room),
    )
    line2 = _where(has_building, building, None)
    lo, hi = ref.postal_lo[pref], ref.postal_hi[pref]
    postal = _cat(_num(lo + h.below(14, hi - lo + 1), 3), "-", _num(h.below(15, 10_000), 4))

    area_len = ref.area_len[pref]
    mobile = (h.u(16) < 0.78) | (area_len == 0)
    prefix = _take(_strs(("090", "080", "070")), _pick(h.u(17), _cumulative((55, 30, 15))))
    mobile_no = _cat(prefix, "-", _num(h.below(18, 10_000), 4), "-", _num(h.below(19, 10_000), 4))
    area = _take(ref.area_code, pref)
    landline = _where(
        area_len == 2,
        _cat(area, "-", _num(1000 + h.below(20, 9000), 4), "-", _num(h.below(21, 10_000), 4)),
        _cat(area, "-", _num(200 + h.below(20, 800), 3), "-", _num(h.below(21, 10_000), 4)),
    )
    phone = _where(mobile, mobile_no, landline)
    return {
        "name": name,
        "phone": phone,
        "postal_code": postal,
        "prefecture": _take(ref.prefectures, pref),
        "city": _take(ref.cities, city),
        "address_line1": line1,
        "address_line2": line2,
    }


# --------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------


def _customer_chunks(plan: _Plan) -> Iterator[_Chunk]:
    import numpy as np
    import pyarrow.compute as pc

    ref = plan.ref
    modulus = 10 ** len(str(plan.customers))
    for ci, lo in enumerate(range(0, plan.customers, ORDER_CHUNK)):
        hi = min(plan.customers, lo + ORDER_CHUNK)
        rng = plan.rng("customers", ci)
        ids = np.arange(lo + 1, hi + 1, dtype=np.int64)
        created = plan.cust_created[lo:hi]
        h = _Hashed(ids, plan.seed, _SALT_PERSON)
        _, family, given = _name_indices(ref, h)
        fam = _take(ref.family_romaji, family)
        giv = _take(ref.given_romaji, given)
        # A number unique per customer (a bijection of the id) keeps every address unique.
        number = _num((ids * 7919 + plan.seed * 104_729 + 17) % modulus)
        e = _Hashed(ids, plan.seed, _SALT_EMAIL)
        initial = pc.utf8_slice_codeunits(giv, 0, 1)
        patterns = [
            _cat(giv, ".", fam, number),
            _cat(fam, ".", giv, number),
            _cat(giv, number),
            _cat(initial, fam, number),
            _cat(fam, "_", giv, number),
            _cat(giv, "-", pc.utf8_slice_codeunits(fam, 0, 3), number),
        ]
        choice = _pick(e.u(1), _cumulative((28, 16, 18, 14, 14, 10)))
        local = patterns[0]
        for i in range(1, len(patterns)):
            local = _where(choice == i, patterns[i], local)
        email = _cat(local, "@", _take(ref.domains, _pick(e.u(2), ref.domain_cum)))
        changed = rng.random(len(ids)) < 0.3  # e-mail address changed since registration
        later = _fraction(rng, created + ((plan.as_of - created) * rng.random(len(ids))).astype(np.int64))
        updated = np.where(changed, np.maximum(later, created), created)
        yield (
            _Chunk("customers")
            .integer("customer_id", ids)
            .text("email", email)
            .timestamp("created_at", created)
            .timestamp("updated_at", updated)
        )


# --------------------------------------------------------------------------------------------
# Orders and their children
# --------------------------------------------------------------------------------------------


def _order_chunks(plan: _Plan, state: _State) -> Iterator[_Chunk]:
    for ci, lo in enumerate(range(0, plan.orders, ORDER_CHUNK)):
        yield from _order_chunk(plan, state, ci, lo, min(plan.orders, lo + ORDER_CHUNK))


def _business_day(plan: _Plan, day: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The JST date ``offsets`` business days (weekdays, not national holidays) after ``day``."""
    import numpy as np

    d = np.busday_offset(day.astype("datetime64[D]"), offsets, roll="forward", holidays=plan.holidays)
    return d.astype(np.int64)


def _order_chunk(plan: _Plan, state: _State, ci: int, lo: int, hi: int) -> Iterator[_Chunk]:
    import numpy as np

    ref = plan.ref
    rng = plan.rng("orders", ci)
    n = hi - lo
    as_of = plan.as_of

    # When: stratified over the period (the i-th order falls in the i-th slice of the growth
    # curve, so chunks are independent and time only moves forward), hour from the shopping profile.
    p = (np.arange(lo, hi) + rng.random(n)) / plan.orders
    tc = plan.start + (_inverse_growth(p) * plan.span).astype(np.int64)
    day = (tc + JST) // DAY
    hour = _pick(rng.random(n), ref.shopping_cum)
    t = day * DAY - JST + hour * HOUR + rng.integers(0, HOUR, n)
    t = np.where((t >= as_of) | (t < plan.start), tc, t)
    t = np.minimum(_fraction(rng, t), as_of - 1)
    t.sort()
    day = (t + JST) // DAY
    order_id = np.arange(lo + 1, hi + 1, dtype=np.int64)

    # LMX-YYYYMMDD-NNNNNN: the store's per-day sequence (Japanese calendar day).
    uniq, first, counts = np.unique(day, return_index=True, return_counts=True)
    counter = np.arange(n, dtype=np.int64) - np.repeat(first, counts) + 1
    for d, f, c in zip(uniq.tolist(), first.tolist(), counts.tolist(), strict=True):
        before = state.day_counts.get(d, 0)
        counter[f : f + c] += before
        state.day_counts[d] = before + c
    if counter.max() >= 1_000_000:
        raise ConfigurationError("more than 999,999 orders on one day: order numbers would overflow")
    y, m, dd = _civil(day)
    order_number = _cat("LMX-", _num(y * 10_000 + m * 100 + dd), "-", _num(counter, 6))

    # Who: a customer registered before the order; new customers often buy soon after signing up.
    k = np.maximum(np.searchsorted(plan.cust_created, t, side="right"), 1)
    newest = rng.random(n) < 0.3
    idx = np.where(
        newest,
        k - 1 - rng.integers(0, np.maximum(1, k // 50)),
        (rng.random(n) * k).astype(np.int64),
    )
    customer_id = np.clip(idx, 0, k - 1) + 1
    gift = rng.random(n) < 0.12
    person = _people(ref, plan.seed, np.where(gift, order_id + (1 << 40), customer_id))

    # What happens to the order: shipped 1-3 and delivered 7-15 business days after it was
    # placed (policy), then closed when the return window ends; a few are cancelled or returned.
    fate = rng.random(n)
    cancelled = fate < 0.03
    returned = (fate >= 0.03) & (fate < 0.07)
    shipped = _business_day(plan, day, rng.integers(1, 4, n)) * DAY - JST + 10 * HOUR
    shipped = _fraction(rng, shipped + rng.integers(0, 10 * HOUR, n))
    delivered = _business_day(plan, day, rng.integers(7, 16, n)) * DAY - JST + 9 * HOUR
    delivered = _fraction(rng, delivered + rng.integers(0, 12 * HOUR, n))
    cancel_at = t + ((shipped - t) * rng.uniform(0.05, 0.9, n)).astype(np.int64)
    closed = np.select(
        [cancelled, returned],
        [cancel_at, delivered + rng.integers(5 * DAY, 15 * DAY, n)],
        delivered + rng.integers(7 * DAY, 15 * DAY, n),
    )
    closed = np.maximum(_fraction(rng, closed), t + MINUTE)
    # A few orders close exactly on, or seconds, hours or days around the retention boundary.
    # (The order still closes at least a day after its delivery.)
    near = rng.permutation(np.flatnonzero(~cancelled & (np.abs(closed - plan.boundary) <= 20 * DAY)))
    taken = np.zeros(near.size, dtype=bool)
    for _ in range(min(BOUNDARY_PER_CHUNK, near.size)):
        at = plan.boundary + BOUNDARY_OFFSETS_US[state.boundary_i % len(BOUNDARY_OFFSETS_US)]
        fits = np.flatnonzero(~taken & (delivered[near] + DAY <= at))
        if not fits.size:
            break
        taken[fits[0]] = True
        closed[near[fits[0]]] = at
        state.boundary_i += 1

    is_closed = closed <= as_of
    is_shipped = ~cancelled & (shipped <= as_of)
    is_delivered = ~cancelled & (delivered <= as_of)
    status = np.select(
        [cancelled & is_closed, cancelled, ~is_shipped, ~is_delivered, ~is_closed, returned],
        [4, 0, 0, 1, 2, 5],
        3,
    )
    updated = np.where(is_shipped, shipped, t)
    updated = np.where(is_delivered, delivered, updated)
    updated = np.where(is_closed, closed, updated)

    # Items
    n_items = _pick(rng.random(n), _cumulative((52, 28, 13, 7))) + 1
    m_rows = int(n_items.sum())
    row_order = np.repeat(np.arange(n), n_items)
    product = _pick(rng.random(m_rows), ref.product_cum)
    product = np.where(rng.random(m_rows) < 0.004, ref.novelty, product)
    cat = ref.product_cat[product]
    u_size = rng.random(m_rows)
    size = np.select(
        [cat == 5, cat == 4],  # footwear, accessories
        [5 + _pick(u_size, ref.shoe_cum), 1 + _pick(u_size, ref.accessory_cum)],
        _pick(u_size, ref.apparel_cum),
    )
    size = np.where(product == ref.novelty, 2, size)
    quantity = _pick(rng.random(m_rows), _cumulative((86, 11, 3))) + 1
    list_price = ref.product_price[product]
    discount = np.where(rng.random(m_rows) < 0.18, rng.choice([0.1, 0.2, 0.3, 0.5], m_rows), 0.0)
    unit_price = (np.floor(list_price * (1.0 - discount) / 10.0) * 10).astype(np.int64)
    unit_price = np.where(discount > 0, unit_price, list_price)
    total = np.bincount(row_order, weights=quantity * unit_price, minlength=n).round().astype(np.int64)
    item_id = state.next_item + np.arange(m_rows, dtype=np.int64)
    state.next_item += m_rows

    yield (
        _Chunk("orders")
        .integer("order_id", order_id)
        .text("order_number", order_number)
        .integer("customer_id", customer_id)
        .text("status", _take(_strs(ORDER_STATUSES), status))
        .timestamp("ordered_at", t)
        .timestamp("completed_at", closed, ~is_closed)
        .integer("total_amount_jpy", total)
        .text("recipient_name", person["name"])
        .text("recipient_phone", person["phone"])
        .text("postal_code", person["postal_code"])
        .text("prefecture", person["prefecture"])
        .text("city", person["city"])
        .text("address_line1", person["address_line1"])
        .text("address_line2", person["address_line2"])
        .timestamp("updated_at", updated)
    )
    yield (
        _Chunk("order_items")
        .integer("order_item_id", item_id)
        .integer("order_id", order_id[row_order])
        .text("sku", _cat(_take(ref.product_code, product), "-", _take(ref.size_sku, size)))
        .text("category", _take(ref.categories, cat))
        .text("style", _take(ref.product_style, product))
        .text("size", _take(ref.size_names, size))
        .text("color", _take(ref.product_color, product))
        .integer("quantity", quantity)
        .integer("unit_price_jpy", unit_price)
    )

    first_item = np.cumsum(n_items) - n_items
    frame = _OrderFrame(
        order_id=order_id, customer_id=customer_id, ordered_at=t, day=day, shipped=shipped,
        delivered=delivered, closed=closed, cancelled=cancelled, returned=returned, total=total,
        first_product=product[first_item], first_size=size[first_item], as_of=as_of,
    )
    yield _payments(plan, state, rng, frame)
    yield _shipments(plan, state, rng, frame)
    yield _tickets(plan, state, rng, frame)

    # Candidates for legal holds: orders past retention, and recent ones.
    past = is_closed & (closed <= plan.boundary)
    for mask, sink, clock in ((past, state.hold_old, closed), (~past, state.hold_recent, t)):
        cand = np.flatnonzero(mask)
        if cand.size:
            sel = np.sort(rng.choice(cand, size=min(16, cand.size), replace=False))
            sink.append(np.stack([order_id[sel], customer_id[sel], clock[sel]], axis=1))


def _payments(plan: _Plan, state: _State, rng: np.random.Generator, o: _OrderFrame) -> _Chunk:
    """One payment per order (cash on delivery paid on delivery, konbini and bank transfer before
    shipping, cards at once); a declined card attempt before a few card payments."""
    import numpy as np

    order_id, t, shipped, delivered, closed = o.order_id, o.ordered_at, o.shipped, o.delivered, o.closed
    cancelled, returned, is_closed = o.cancelled, o.returned, o.is_closed
    n = len(order_id)
    as_of = plan.as_of
    method = _pick(rng.random(n), _cumulative([w for _, w in PAYMENT_METHODS]))
    card = method == 0
    prepaid = (method == 1) | (method == 2)  # konbini, bank transfer: paid before shipping
    retry = card & (rng.random(n) < 0.03)  # the first card was declined, the second one worked

    paid = np.select(
        [card, prepaid],
        [t + rng.integers(2 * US, 60 * US, n) + retry * 90 * US,
         t + ((shipped - t) * rng.uniform(0.05, 0.8, n)).astype(np.int64)],
        delivered,
    )
    paid = np.maximum(_fraction(rng, paid), t + US)
    ever_paid = np.where(cancelled, card, True) & (paid <= as_of)
    refunded = (cancelled | returned) & is_closed & ever_paid
    failed = cancelled & is_closed & ~ever_paid
    status = np.select([refunded, failed, ever_paid], [2, 3, 1], 0)
    updated = np.select(
        [refunded | failed, status == 1],
        [closed, paid],
        np.minimum(t + rng.integers(US, 30 * US, n), as_of - 1),
    )
    brand = _pick(rng.random(n), _cumulative([w for _, w in CARD_BRANDS]))
    last4 = rng.integers(0, 10_000, n)

    # Declined first attempts, each just before the order's successful payment.
    r = np.flatnonzero(retry)
    rows = np.concatenate([r, np.arange(n)])
    order = np.lexsort((np.concatenate([np.zeros(r.size, np.int64), np.ones(n, np.int64)]), rows))
    rows = rows[order]

    def col(main: Any, declined: Any) -> Any:
        return np.concatenate([declined, main])[order]

    m_status = col(status, np.full(r.size, 3))
    payment_id = state.next_payment + np.arange(rows.size, dtype=np.int64)
    state.next_payment += rows.size
    brands = _strs([b for b, _ in CARD_BRANDS])
    m_brand = col(brand, _pick(rng.random(r.size), _cumulative([w for _, w in CARD_BRANDS])))
    m_card = card[rows]
    declined_at = np.minimum(t[r] + rng.integers(US, 30 * US, r.size), as_of - 1)
    return (
        _Chunk("payments")
        .integer("payment_id", payment_id)
        .integer("order_id", order_id[rows])
        .text("method", _take(_strs([mth for mth, _ in PAYMENT_METHODS]), method[rows]))
        .text("card_brand", _where(m_card, _take(brands, m_brand), None))
        .text("card_last4", _where(m_card, _num(col(last4, rng.integers(0, 10_000, r.size)), 4), None))
        .integer("amount_jpy", o.total[rows])
        .text("status", _take(_strs(PAYMENT_STATUSES), m_status))
        .timestamp("paid_at", col(paid, np.zeros(r.size, np.int64)), (m_status == 0) | (m_status == 3))
        .timestamp("updated_at", col(updated, declined_at))
    )


def _shipments(plan: _Plan, state: _State, rng: np.random.Generator, o: _OrderFrame) -> _Chunk:
    """A shipment for every order that has shipped, and a pending one for some that have not."""
    import numpy as np

    order_id, t, shipped, delivered, closed = o.order_id, o.ordered_at, o.shipped, o.delivered, o.closed
    cancelled, returned, is_closed, is_shipped = o.cancelled, o.returned, o.is_closed, o.is_shipped
    n = len(order_id)
    as_of = plan.as_of
    # A label is often printed before the parcel leaves: a pending shipment without tracking.
    pending = ~cancelled & ~is_shipped & (rng.random(n) < 0.5)
    carrier = _pick(rng.random(n), _cumulative([w for _, w in CARRIERS]))
    label_at = np.minimum(t + rng.integers(MINUTE, 20 * HOUR, n), as_of - 1)
    rows = np.flatnonzero(is_shipped | pending)
    s_shipped = is_shipped[rows]
    s_delivered = s_shipped & (delivered[rows] <= as_of)
    s_returned = s_shipped & returned[rows] & is_closed[rows]
    status = np.select([s_returned, s_delivered, s_shipped], [3, 2, 1], 0)
    updated = np.select(
        [s_returned, s_delivered, s_shipped], [closed[rows], delivered[rows], shipped[rows]], label_at[rows]
    )
    shipment_id = state.next_shipment + np.arange(rows.size, dtype=np.int64)
    state.next_shipment += rows.size
    # 12 digits, unique: a bijection of the shipment id (never 13+ digits: no card-number lookalikes).
    tracking = 100_000_000_000 + (shipment_id * 556_230_589_547 + 12_345 + plan.seed) % 900_000_000_000
    return (
        _Chunk("shipments")
        .integer("shipment_id", shipment_id)
        .integer("order_id", order_id[rows])
        .text("carrier", _take(_strs([c for c, _ in CARRIERS]), carrier[rows]))
        .text("tracking_number", _where(s_shipped, _num(tracking), None))
        .text("status", _take(_strs(SHIPMENT_STATUSES), status))
        .timestamp("shipped_at", shipped[rows], ~s_shipped)
        .timestamp("delivered_at", delivered[rows], ~s_delivered)
        .timestamp("updated_at", updated)
    )


def _ticket_text(
    rng: np.random.Generator,
    templates: Sequence[tuple[str, str, str]],
    ref: _Reference,
    item: tuple[int, int, int],
) -> tuple[str, str]:
    """Subject and body for one ticket; ``item`` is (product, size, Japanese calendar day)."""
    product, size, day = item
    _, subject, body = templates[int(rng.integers(0, len(templates)))]
    size_name = ref.size_list[size]
    wear = "着て"
    if "." in size_name:  # shoe size: half a size up
        alt_size = f"{float(size_name) + 0.5:.1f}cm"
        size_name += "cm"
        wear = "履いて"
    else:
        order = [s for s, _ in APPAREL_SIZES]
        i = order.index(size_name)
        alt_size = order[i + 1] if i + 1 < len(order) else order[i - 1]
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    text = body.format(
        style=ref.style_list[product],
        color=ref.product_colors[product],
        size=size_name,
        alt_size=alt_size,
        alt_color=COLORS[int(rng.integers(0, len(COLORS)))],
        date=f"{date.month}月{date.day}日",
        wear=wear,
    )
    if not text.endswith(("🙏", "お願いいたします。", "ください。")):
        text += TICKET_CLOSINGS[int(rng.integers(0, len(TICKET_CLOSINGS)))]
    return subject, text


def _tickets(plan: _Plan, state: _State, rng: np.random.Generator, o: _OrderFrame) -> _Chunk:
    """After-service tickets: about 8 % of orders, most about an order, some about none."""
    import numpy as np

    order_id, customer_id, t = o.order_id, o.customer_id, o.ordered_at
    shipped, delivered = o.shipped, o.delivered
    closed, returned, is_closed, is_delivered = o.closed, o.returned, o.is_closed, o.is_delivered
    ref = plan.ref
    as_of = plan.as_of
    n = len(order_id)
    sel = np.flatnonzero(rng.random(n) < np.where(returned & is_closed, 0.35, 0.068))
    k = sel.size
    # kind: returned orders ask for a return or exchange; others by what has happened so far
    u = rng.random(k)
    kind = np.where(
        is_delivered[sel],
        _pick(u, _cumulative((30, 15, 15, 10, 15, 5))),
        np.array([0, 4, 5])[_pick(u, _cumulative((70, 20, 10)))],
    )
    kind = np.where(returned[sel] & is_closed[sel], np.where(u < 0.7, 1, 2), kind)
    ts_, dl, sh = t[sel], delivered[sel], shipped[sel]
    v = rng.random(k)
    opened = np.select(
        [kind == 0, (kind == 1) | (kind == 2), kind == 3, kind == 4],
        [
            ts_ + ((np.minimum(sh, as_of) - ts_) * v).astype(np.int64),
            dl + (np.maximum(HOUR, (closed[sel] - dl) // 3) * v).astype(np.int64),
            dl + 10 * DAY + (190 * DAY * v).astype(np.int64),
            np.where(is_delivered[sel], dl + (3 * DAY * v).astype(np.int64),
                     ts_ + ((as_of - ts_) * v).astype(np.int64)),
        ],
        ts_ + (60 * DAY * v).astype(np.int64),
    )
    # would open in the future: open it between the delivery (or the order) and as_of instead
    late = opened >= as_of - MINUTE
    since = np.where(is_delivered[sel], dl, ts_)
    opened = np.where(late, since + ((as_of - MINUTE - since) * rng.random(k)).astype(np.int64), opened)
    opened = np.maximum(opened, ts_ + MINUTE)

    # Tickets about no order (registration, newsletters, data requests).
    ku = int(k * 0.15 / 0.85 + rng.random())
    lo_t = int(t[0])
    window = max(0, min(as_of - MINUTE, int(t[-1]) + 2 * DAY) - lo_t)
    u_open = lo_t + (rng.random(ku) * window).astype(np.int64)
    kc = np.maximum(np.searchsorted(plan.cust_created, u_open, side="right"), 1)
    u_customer = (rng.random(ku) * kc).astype(np.int64) + 1
    u_kind_t = rng.integers(0, len(UNLINKED_TICKET_TEMPLATES), ku)
    u_kind = np.array([TICKET_KINDS.index(UNLINKED_TICKET_TEMPLATES[i][0]) for i in u_kind_t], dtype=np.int64)

    all_open = _fraction(rng, np.concatenate([opened, u_open]))
    all_kind = np.concatenate([kind, u_kind])
    total = k + ku
    linked = np.arange(total) < k
    resolve = np.exp(rng.normal(np.log(20 * HOUR), 1.0, total)).astype(np.int64)
    closed_at = _fraction(rng, all_open + np.clip(resolve, 20 * MINUTE, 20 * DAY))
    is_open = (closed_at > as_of) | (rng.random(total) < 0.02)
    # At least one ticket still open on an order past retention: it protects that order.
    past = np.zeros(total, bool)
    past[:k] = is_closed[sel] & (closed[sel] <= plan.boundary)
    if not state.forced_open_ticket and past.any():
        is_open[np.flatnonzero(past)[0]] = True
        state.forced_open_ticket = True
    updated = np.where(
        is_open,
        np.minimum(all_open + rng.integers(MINUTE, 2 * DAY, total), as_of - 1),
        closed_at,
    )
    updated = np.maximum(updated, all_open)
    attachments = np.where(
        np.isin(all_kind, [TICKET_KINDS.index(x) for x in ATTACHMENT_KINDS]),
        _pick(rng.random(total), _cumulative((40, 30, 20, 10))),
        _pick(rng.random(total), _cumulative((90, 8, 2))),
    )

    subjects: list[str] = []
    bodies: list[str] = []
    by_kind = {kd: [tp for tp in TICKET_TEMPLATES if tp[0] == kd] for kd in TICKET_KINDS}
    rand_product = _pick(rng.random(total), ref.product_cum)
    for i in range(total):
        if i < k:
            j = sel[i]
            templates: Sequence[tuple[str, str, str]] = by_kind[TICKET_KINDS[int(all_kind[i])]]
            item = (int(o.first_product[j]), int(o.first_size[j]), int(o.day[j]))
        else:  # no order: a product the customer asks about, size M
            templates = [UNLINKED_TICKET_TEMPLATES[int(u_kind_t[i - k])]]
            item = (int(rand_product[i]), 2, int((all_open[i] + JST) // DAY))
        subject, body = _ticket_text(rng, templates, ref, item)
        subjects.append(subject)
        bodies.append(body)

    order = np.argsort(all_open, kind="stable")
    ticket_id = state.next_ticket + np.arange(total, dtype=np.int64)
    state.next_ticket += total
    t_order = np.concatenate([order_id[sel], np.zeros(ku, np.int64)])[order]
    return (
        _Chunk("service_tickets")
        .integer("ticket_id", ticket_id)
        .integer("customer_id", np.concatenate([customer_id[sel], u_customer])[order])
        .integer("order_id", t_order, ~linked[order])
        .text("kind", _take(_strs(TICKET_KINDS), all_kind[order]))
        .text("status", _take(_strs(("closed", "open")), is_open[order].astype(np.int64)))
        .text("subject", _take(_strs(subjects), order))
        .text("body", _take(_strs(bodies), order))
        .integer("attachment_count", attachments[order])
        .timestamp("opened_at", all_open[order])
        .timestamp("closed_at", closed_at[order], is_open[order])
        .timestamp("updated_at", updated[order])
    )


# --------------------------------------------------------------------------------------------
# Legal holds
# --------------------------------------------------------------------------------------------

# (subject type, which orders, active?) repeated in this order: the first three holds always
# include an active hold on a past-retention order, an active hold on the customer of one, and
# a released one (which no longer protects anything).
_HOLD_PLAN = (
    ("order", "old", True),
    ("customer", "old", True),
    ("order", "old", False),
    ("order", "recent", True),
    ("customer", "old", False),
)


def _legal_holds(plan: _Plan, state: _State) -> _Chunk:
    import numpy as np

    rng = plan.rng("holds", 0)
    count = max(3 if plan.orders >= 100 else 0, round(plan.orders * 0.002))
    pools = {
        "old": np.concatenate(state.hold_old) if state.hold_old else np.zeros((0, 3), np.int64),
        "recent": np.concatenate(state.hold_recent) if state.hold_recent else np.zeros((0, 3), np.int64),
    }
    pools = {name: pool[rng.permutation(len(pool))] for name, pool in pools.items()}
    used: dict[str, set[int]] = {"order": set(), "customer": set()}
    cursor = {"old": 0, "recent": 0}
    subject_type, subject_id, placed, released = [], [], [], []
    for i in range(count):
        kind, which, active = _HOLD_PLAN[i % len(_HOLD_PLAN)]
        if cursor[which] >= len(pools[which]):
            which = "recent" if which == "old" else "old"
        row = None
        while cursor[which] < len(pools[which]):
            cand = pools[which][cursor[which]]
            cursor[which] += 1
            sid = int(cand[0] if kind == "order" else cand[1])
            if sid not in used[kind]:
                used[kind].add(sid)
                row = (sid, int(cand[2]))
                break
        if row is None:
            continue
        sid, clock = row
        if which == "old":
            # placed while the order was still inside its retention period
            at = clock + int(rng.integers(20 * DAY, 330 * DAY))
        else:
            at = clock + int((plan.as_of - clock) * rng.uniform(0.1, 0.9))
        at = min(at, plan.as_of - HOUR)
        end = None
        if not active:
            end = at + int(rng.integers(30 * DAY, 400 * DAY))
            if end >= plan.as_of:
                end = at + int((plan.as_of - at) * rng.uniform(0.3, 0.9))
        subject_type.append(kind)
        subject_id.append(sid)
        placed.append(at)
        released.append(end)
    k = len(subject_type)
    placed_us = _fraction(rng, np.array(placed, dtype=np.int64))
    released_null = np.array([r is None for r in released], dtype=bool)
    released_us = np.array([r or 0 for r in released], dtype=np.int64)
    released_us = np.where(released_null, 0, np.maximum(_fraction(rng, released_us), placed_us + US))
    reasons = [HOLD_REASONS[int(j)] for j in rng.integers(0, len(HOLD_REASONS), k)]
    return (
        _Chunk("legal_holds")
        .integer("hold_id", np.arange(1, k + 1, dtype=np.int64))
        .text("subject_type", _strs(subject_type))
        .integer("subject_id", np.array(subject_id, dtype=np.int64))
        .text("reason", _strs(reasons))
        .timestamp("placed_at", placed_us)
        .timestamp("released_at", released_us, released_null)
    )


# --------------------------------------------------------------------------------------------
# Staff access log
# --------------------------------------------------------------------------------------------


def business_days(policy: Policy, first: dt.date, last: dt.date) -> list[dt.date]:
    """Working days between ``first`` and ``last`` (inclusive) under the policy's business hours."""
    import holidays as holidays_lib

    bh = policy.business_hours
    cal = (
        holidays_lib.country_holidays(bh.holiday_country, years=range(first.year, last.year + 1))
        if bh.holiday_country
        else {}
    )
    off = set(bh.extra_holidays)
    working = set(bh.working_days)
    out = []
    d = first
    while d <= last:
        if d in working or (d.weekday() in bh.weekdays and d not in cal and d not in off):
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _role_matrix(policy: Policy) -> tuple[list[str], dict[str, list[str]], dict[str, set[str]]]:
    resources = [r for r in RESOURCE_POPULARITY if r in policy.data_categories]
    readable: dict[str, list[str]] = {}
    writable: dict[str, set[str]] = {}
    for role, grant in policy.roles.items():
        readable[role] = [r for r in resources if policy.data_categories[r] in grant.read]
        writable[role] = {r for r in resources if policy.data_categories[r] in grant.write}
    return resources, readable, writable


def _access_chunks(plan: _Plan, totals: dict[str, int]) -> Iterator[_Chunk]:
    import zoneinfo

    import numpy as np

    policy = plan.policy
    bh = policy.business_hours
    zone = zoneinfo.ZoneInfo(bh.timezone)
    as_of = dt.datetime.fromtimestamp(plan.as_of / US, tz=dt.UTC)
    local_end = as_of.astimezone(zone).date()
    days = business_days(policy, local_end - dt.timedelta(days=ACCESS_LOG_DAYS), local_end)
    per_day = max(50, plan.orders // 20)
    resources, readable, writable = _role_matrix(policy)

    staff = [(sid, role) for sid, role in STAFF if readable.get(role) and ROLE_ACTIVITY.get(role, 0) > 0]
    if not staff:
        return
    roles = sorted({role for _, role in staff})
    staff_role = np.array([roles.index(role) for _, role in staff], dtype=np.int64)
    staff_cum = _cumulative([ROLE_ACTIVITY[role] for _, role in staff])
    role_res_cum = [_cumulative([RESOURCE_POPULARITY[r] for r in readable[role]]) for role in roles]
    role_res_idx = [np.array([resources.index(r) for r in readable[role]]) for role in roles]
    can_write = np.array([[r in writable[role] for r in resources] for role in roles], dtype=bool)
    ips = _strs([f"10.20.{ROLE_SUBNET.get(role, 10)}.{10 + i}" for i, (_, role) in enumerate(staff)])
    staff_ids = _strs([sid for sid, _ in staff])
    role_names = _strs(roles)
    resource_names = _strs(resources)
    res_total = np.array([totals.get(r, 0) for r in resources], dtype=np.int64)
    start_s = bh.start.hour * 3600 + bh.start.minute * 60
    end_s = bh.end.hour * 3600 + bh.end.minute * 60

    groups: list[list[dt.date]] = []
    for d in days:
        if not groups or len(groups[-1]) * per_day + per_day > EVENT_CHUNK:
            groups.append([])
        groups[-1].append(d)
    next_event = 1
    for gi, group in enumerate(groups):
        rng = plan.rng("access", gi)
        n = per_day * len(group)
        # local midnight of each day as a UTC instant (zone offset of that day)
        midnights = np.array(
            [_to_us(dt.datetime(d.year, d.month, d.day, tzinfo=zone)) for d in group], dtype=np.int64
        )
        which_day = np.repeat(np.arange(len(group)), per_day)
        at = midnights[which_day] + start_s * US + rng.integers(0, (end_s - start_s) * US, n)
        at = _fraction(rng, at)
        keep = at < plan.as_of
        at, which_day = at[keep], which_day[keep]
        o = np.argsort(at, kind="stable")
        at, which_day = at[o], which_day[o]
        n = at.size
        if n == 0:
            continue
        who = _pick(rng.random(n), staff_cum)
        role = staff_role[who]
        res = np.zeros(n, dtype=np.int64)
        u = rng.random(n)
        for ri in range(len(roles)):
            mask = role == ri
            res[mask] = role_res_idx[ri][_pick(u[mask], role_res_cum[ri])]
        a = rng.random(n)
        action = np.select([a < 0.05, a < 0.065, can_write[role, res] & (a >= 0.88)], [1, 2, 3], 0)
        many = (action == 1) | (action == 2)
        count = np.select(
            [action == 1, action == 2], [rng.integers(1, 61, n), rng.integers(20, 201, n)], 1
        )
        # a record that existed at the time (ids grow with time), mostly recent ones
        share = np.where(
            res == resources.index("customers") if "customers" in resources else False,
            np.searchsorted(plan.cust_created, at) / max(1, plan.customers),
            _growth_cdf((at - plan.start) / plan.span),
        )
        upper = np.maximum(1, (res_total[res] * share).astype(np.int64))
        record = np.maximum(1, upper - (upper * rng.random(n) ** 3 * 0.5).astype(np.int64))
        # a few isolated denials: at most one per staff member and day
        outcome = np.zeros(n, dtype=np.int64)
        for di in range(len(group)):
            idx = np.flatnonzero(which_day == di)
            seen: set[int] = set()
            for j in rng.choice(idx, size=min(idx.size, 3, int(rng.poisson(0.8))), replace=False):
                if int(who[j]) not in seen:
                    seen.add(int(who[j]))
                    outcome[j] = 1
        event_id = next_event + np.arange(n, dtype=np.int64)
        next_event += n
        yield (
            _Chunk("staff_access_log")
            .integer("event_id", event_id)
            .timestamp("occurred_at", at)
            .text("staff_id", _take(staff_ids, who))
            .text("staff_role", _take(role_names, role))
            .text("action", _take(_strs(ACTIONS), action))
            .text("resource", _take(resource_names, res))
            .integer("record_id", record, many)
            .integer("record_count", count)
            .text("client_ip", _take(ips, who))
            .text("outcome", _take(_strs(("allowed", "denied")), outcome))
        )


# --------------------------------------------------------------------------------------------
# Storefront visits
# --------------------------------------------------------------------------------------------


def _session_ids(rng: np.random.Generator, n: int, width: int = 24) -> pa.Array:
    """Random base-62 session ids; every 8th character is a letter, so no long digit runs."""
    import numpy as np

    alphabet = np.frombuffer(BASE62, dtype=np.uint8)
    chars = rng.integers(0, 62, (n, width))
    chars[:, ::8] = rng.integers(10, 62, (n, len(range(0, width, 8))))
    return _fixed_width_strings(alphabet[chars], None, None)


def _visit_chunks(plan: _Plan) -> Iterator[_Chunk]:
    import numpy as np

    ref = plan.ref
    sessions = max(1, plan.orders // 3)
    window = SITE_VISIT_DAYS * DAY
    first = plan.as_of - window
    next_visit = 1
    static = _strs(("/", "/cart", "/checkout", "/guide/size", "/account/orders", "/login"))
    devices = _strs([d for d, _ in DEVICES])
    browser_names: list[str] = []
    browser_cum, browser_off = [], []
    for dev, _ in DEVICES:
        browser_off.append(len(browser_names))
        browser_names.extend(b for b, _ in BROWSERS[dev])
        browser_cum.append(_cumulative([w for _, w in BROWSERS[dev]]))
    browsers = _strs(browser_names)
    terms = _strs(SEARCH_TERMS)
    for ci, lo in enumerate(range(0, sessions, SESSION_CHUNK)):
        s = min(sessions, lo + SESSION_CHUNK) - lo
        rng = plan.rng("visits", ci)
        begin = first + (rng.random(s) * window).astype(np.int64)
        day = (begin + JST) // DAY
        begin2 = day * DAY - JST + _pick(rng.random(s), ref.shopping_cum) * HOUR + rng.integers(0, HOUR, s)
        begin = np.where((begin2 < plan.as_of) & (begin2 >= first), begin2, begin)
        pages = np.minimum(rng.geometric(0.38, s), 12)
        row = np.repeat(np.arange(s), pages)
        m = row.size
        step = rng.integers(5 * US, 180 * US, m)
        starts = np.cumsum(pages) - pages
        step[starts] = 0
        csum = np.cumsum(step)
        offset = csum - np.repeat(csum[starts], pages)
        at = _fraction(rng, begin[row] + offset)
        logged = rng.random(s) < 0.35
        k = np.searchsorted(plan.cust_created, begin, side="right")
        anonymous = ~logged | (k == 0)
        customer = (rng.random(s) * np.maximum(k, 1)).astype(np.int64) + 1
        device = _pick(rng.random(s), _cumulative([w for _, w in DEVICES]))
        ub = rng.random(s)
        browser = np.zeros(s, dtype=np.int64)
        for di in range(len(DEVICES)):
            mask = device == di
            browser[mask] = browser_off[di] + _pick(ub[mask], browser_cum[di])
        sid = _session_ids(rng, s)

        kind = _pick(rng.random(m), _cumulative((15, 45, 15, 8, 4, 5, 4, 4)))
        product = _pick(rng.random(m), ref.product_cum)
        cat = ref.product_cat[product]
        # /account/orders only for signed-in visitors; anonymous ones are sent to /login
        static_i = np.select(
            [kind == 3, kind == 4, kind == 6, kind == 7],
            [1, 2, 3, np.where(anonymous[row], 5, 4)],
            0,
        )
        path = _take(static, static_i)
        path = _where(kind == 1, _cat("/products/", _take(ref.categories, cat), "/",
                                      _take(ref.product_code, product)), path)
        path = _where(kind == 2, _cat("/categories/", _take(ref.categories, cat)), path)
        term = _take(terms, rng.integers(0, len(SEARCH_TERMS), m))
        path = _where(kind == 5, _cat("/search?q=", term), path)

        keep = np.flatnonzero(at < plan.as_of)
        keep = keep[np.argsort(at[keep], kind="stable")]
        r = row[keep]
        visit_id = next_visit + np.arange(keep.size, dtype=np.int64)
        next_visit += keep.size
        yield (
            _Chunk("site_visits")
            .integer("visit_id", visit_id)
            .text("session_id", _take(sid, r))
            .integer("customer_id", customer[r], anonymous[r])
            .text("device_type", _take(devices, device[r]))
            .text("browser", _take(browsers, browser[r]))
            .text("page_path", _take(path, keep))
            .timestamp("visited_at", at[keep])
        )


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def contract_statements() -> list[str]:
    """The statements of the vendored store contract, ``--`` comments removed."""
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_REFERENCES = re.compile(r"\s+REFERENCES\s+(\w+)\s*\(\s*(\w+)\s*\)", re.IGNORECASE)
_PRIMARY_KEY = re.compile(r"\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_UNIQUE = re.compile(r"\s+UNIQUE\b", re.IGNORECASE)


def _deferred_constraints(statement: str) -> tuple[str, list[str], list[str]]:
    """Split a CREATE TABLE into the bare table and the ALTER TABLEs that add its constraints.

    Returns ``(create, keys, foreign_keys)``: primary keys and unique constraints are built
    after a bulk load in one sort instead of row by row, and foreign keys validated in one
    scan. ``ALTER TABLE t ADD PRIMARY KEY (c)`` / ``ADD UNIQUE (c)`` / ``ADD FOREIGN KEY (c)``
    give the constraints the names PostgreSQL gives the inline forms (``t_pkey``, ``t_c_key``,
    ``t_c_fkey``), so the finished schema is the contract's.
    """
    match = re.match(r"CREATE\s+TABLE\s+(\w+)", statement, re.IGNORECASE)
    assert match, statement
    table = match.group(1)
    lines: list[str] = []
    keys: list[str] = []
    foreign: list[str] = []
    for line in statement.splitlines():
        column = line.split()[0] if line.strip() else ""
        ref = _REFERENCES.search(line)
        if ref:
            foreign.append(
                f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {ref.group(1)} ({ref.group(2)})"
            )
            line = line[: ref.start()] + line[ref.end() :]  # noqa: PLW2901 - the line without the clause
        if _PRIMARY_KEY.search(line):
            keys.append(f"ALTER TABLE {table} ADD PRIMARY KEY ({column})")
            line = _PRIMARY_KEY.sub("", line)  # noqa: PLW2901
        elif _UNIQUE.search(line):
            keys.append(f"ALTER TABLE {table} ADD UNIQUE ({column})")
            line = _UNIQUE.sub("", line)  # noqa: PLW2901
        lines.append(line)
    return "\n".join(lines), keys, foreign


def _existing_tables(conn: Any, target: DatabaseTarget) -> list[str]:
    if target.is_sqlite:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    else:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    present = {r[0] for r in rows}
    return [t for t in TABLES if t in present]


def _refuse_existing(conn: Any, target: DatabaseTarget) -> None:
    existing = _existing_tables(conn, target)
    if existing:
        raise ConfigurationError(
            f"the store database {target.describe()} already has the table(s) {', '.join(existing)}: "
            "creating the schema needs an empty database (drop them, or seed with create=False "
            "to fill existing empty tables)"
        )


def create_schema(target: DatabaseTarget) -> None:
    """Create the store's tables and indexes from the vendored contract DDL (SQLite or PostgreSQL).

    Fails, naming the tables, when any of the contract's tables already exists.
    """
    statements = contract_statements()
    with db.connection(target, autocommit=target.is_sqlite) as conn:
        _refuse_existing(conn, target)
        if target.is_sqlite:
            conn.execute("BEGIN")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT") if target.is_sqlite else conn.commit()
        except BaseException:
            conn.rollback()
            raise
    log.info("created the store schema in %s (%d statements)", target.describe(), len(statements))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _copy_escape(values: pa.Array) -> pa.Array:
    """Escape backslash, tab, newline and carriage return for COPY's text format."""
    import numpy as np
    import pyarrow.compute as pc

    data = values.buffers()[2]
    if data is None:
        return values
    special = np.zeros(256, dtype=bool)
    special[[9, 10, 13, 92]] = True
    if not special[np.frombuffer(data, dtype=np.uint8)].any():
        return values
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        values = pc.replace_substring(values, char, escaped)
    return values


def _copy_payload(chunk: _Chunk) -> bytes:
    """The chunk as COPY text format: tab-separated, ``\\N`` for NULL, one line per row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    for kind, values, null in zip(chunk.kinds, chunk.values, chunk.nulls, strict=True):
        if kind == "int":
            parts.append(pc.cast(pa.array(values, type=pa.int64(), mask=null), pa.string()))
        elif kind == "ts":
            parts.append(format_timestamps(values, null, "+00"))
        else:
            plain = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            parts.append(_copy_escape(plain))
    rows = pc.binary_join_element_wise(*parts, "\t", null_handling="replace", null_replacement="\\N")
    lines = pc.binary_join_element_wise(rows, "", "\n")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[int(offsets[0]) : int(offsets[-1])]


def _python_columns(chunk: _Chunk) -> list[list[Any]]:
    import pyarrow as pa

    out = []
    for kind, values, null in zip(chunk.kinds, chunk.values, chunk.nulls, strict=True):
        if kind == "int":
            out.append(values.tolist() if null is None else pa.array(values, mask=null).to_pylist())
        elif kind == "ts":
            out.append(format_timestamps(values, null).to_pylist())
        else:
            out.append(values.to_pylist())
    return out


class _SqliteLoader:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def write(self, chunk: _Chunk) -> None:
        if not len(chunk):
            return
        sql = (
            f"INSERT INTO {chunk.table} ({', '.join(chunk.names)}) "
            f"VALUES ({', '.join('?' * len(chunk.names))})"
        )
        rows = zip(*_python_columns(chunk), strict=True)
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(sql, rows)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.rollback()
            raise

    def close(self) -> None:
        pass


class _PostgresLoader:
    """COPY in a background thread, so the next chunk is generated while the server loads one."""

    def __init__(self, conn: Any, *, freeze: bool = False) -> None:
        self.conn = conn
        self._options = " WITH (FREEZE)" if freeze else ""
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="seed-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks
            try:
                payload = _copy_payload(chunk)
                with self.conn.cursor() as cur, cur.copy(
                    f"COPY {chunk.table} ({', '.join(chunk.names)}) FROM STDIN{self._options}"
                ) as copy:
                    copy.write(payload)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread, re-raised there
                self._error = exc

    def write(self, chunk: _Chunk) -> None:
        if self._error is not None:
            self.close()
        if len(chunk):
            self._queue.put(chunk)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def default_as_of() -> dt.datetime:
    """Today 00:00 UTC."""
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)


def _generate(plan: _Plan) -> Iterator[_Chunk]:
    state = _State()
    yield from _customer_chunks(plan)
    yield from _order_chunks(plan, state)
    yield _legal_holds(plan, state)
    totals = {
        "customers": plan.customers,
        "orders": plan.orders,
        "order_items": state.next_item - 1,
        "payments": state.next_payment - 1,
        "shipments": state.next_shipment - 1,
        "service_tickets": state.next_ticket - 1,
    }
    yield from _access_chunks(plan, totals)
    yield from _visit_chunks(plan)


def seed_store(
    target: DatabaseTarget,
    *,
    orders: int = 5000,
    as_of: dt.datetime | None = None,
    years: float = 3.0,
    seed: int = 42,
    create: bool = True,
) -> dict[str, int]:
    """Fill the store database with a realistic synthetic store; returns the row count per table.

    ``as_of`` (UTC-aware, default today 00:00 UTC) is the "now" of the data: orders span the
    ``years`` before it. The same arguments always give the same rows. With ``create`` the
    schema is created first (the database must not have the contract's tables yet); without it
    the contract's tables must exist and be empty.
    """
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
        raise ConfigurationError(f"orders must be a positive integer, not {orders!r}")
    if not years > 0:
        raise ConfigurationError(f"years must be positive, not {years!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, not {seed!r}")
    if as_of is None:
        as_of = default_as_of()
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ConfigurationError("as_of must be a timezone-aware datetime (UTC)")
    utc = as_of.astimezone(dt.UTC)  # a plain datetime from here on (pendulum's arithmetic differs)
    as_of = dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=dt.UTC
    )

    started = time.monotonic()
    plan = _make_plan(load_policy(), orders, as_of, years, seed)
    counts = dict.fromkeys(TABLES, 0)
    statements = contract_statements()
    tables = [s for s in statements if re.match(r"CREATE\s+TABLE", s, re.IGNORECASE)]
    indexes = [s for s in statements if s not in tables]

    def load(write: Callable[[_Chunk], None]) -> None:
        for chunk in _generate(plan):
            write(chunk)
            counts[chunk.table] += len(chunk)
            log.debug("seed: %s +%d rows", chunk.table, len(chunk))

    if target.is_sqlite:
        with db.connection(target, autocommit=True) as conn:
            if create:
                _refuse_existing(conn, target)
                conn.execute("BEGIN")
                for statement in tables:
                    conn.execute(statement)
                conn.execute("COMMIT")
            else:
                _require_empty(conn, target)
            loader = _SqliteLoader(conn)
            load(loader.write)
            if create:  # indexes after the data: faster than maintaining them row by row
                conn.execute("BEGIN")
                for statement in indexes:
                    conn.execute(statement)
                conn.execute("COMMIT")
            # (no ANALYZE: it would add sqlite_stat1, and the store file keeps exactly the contract's tables)
    elif target.is_postgres:
        # One transaction: a failed seed leaves nothing behind. With create, keys, foreign keys
        # and indexes are added after the data (one sort or scan each instead of work per row).
        with db.connection(target) as conn:
            try:
                keys: list[str] = []
                foreign: list[str] = []
                if create:
                    _refuse_existing(conn, target)
                    for statement in tables:
                        ddl, table_keys, table_foreign = _deferred_constraints(statement)
                        conn.execute(ddl)
                        keys.extend(table_keys)
                        foreign.extend(table_foreign)
                else:
                    _require_empty(conn, target)
                conn.execute("SET LOCAL synchronous_commit = off")
                # FREEZE: the tables were created in this transaction, rows need no later vacuum
                pg_loader = _PostgresLoader(conn, freeze=create)
                try:
                    load(pg_loader.write)
                finally:
                    pg_loader.close()
                log.info("seed: rows loaded after %.1fs", time.monotonic() - started)
                if create:
                    conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                    for statement in keys + foreign + indexes:
                        conn.execute(statement)
                    log.info("seed: keys and indexes added after %.1fs", time.monotonic() - started)
                conn.execute("ANALYZE " + ", ".join(TABLES))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
    else:
        raise ConfigurationError(f"connection {target.conn_id!r}: unsupported dialect {target.dialect!r}")

    log.info(
        "seeded %s as of %s in %.1fs: %s",
        target.describe(), as_of.isoformat(), time.monotonic() - started,
        ", ".join(f"{t}={c}" for t, c in counts.items()),
    )
    return counts


def _require_empty(conn: Any, target: DatabaseTarget) -> None:
    missing = [t for t in TABLES if t not in _existing_tables(conn, target)]
    if missing:
        raise ConfigurationError(
            f"the store database {target.describe()} lacks the table(s) {', '.join(missing)}: "
            "seed with create=True, or create the contract schema first"
        )
    full = [t for t in TABLES if conn.execute(f"SELECT 1 FROM {db.quote_ident(t)} LIMIT 1").fetchone()]
    if full:
        raise ConfigurationError(
            f"the store database {target.describe()} already has rows in {', '.join(full)}: "
            "the seed only fills empty tables"
        )


def _parse_as_of(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lomevexi_governance.seed",
        description="Fill an empty store database with a realistic synthetic Lomevexi store.",
    )
    parser.add_argument(
        "--db", required=True,
        help="connection URI: sqlite:////abs/path.db or postgresql://user@host:port/db",
    )
    parser.add_argument("--orders", type=int, default=5000, help="number of orders (default 5000)")
    parser.add_argument(
        "--as-of", type=_parse_as_of, default=None,
        help="the 'now' of the data, ISO date or date-time, UTC when no offset (default: today 00:00 UTC)",
    )
    parser.add_argument("--years", type=float, default=3.0, help="years of order history (default 3)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--no-create", action="store_true",
        help="fill the existing, empty contract tables instead of creating them",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    target = target_from_uri(args.db, conn_id="seed")
    started = time.monotonic()
    counts = seed_store(
        target, orders=args.orders, as_of=args.as_of, years=args.years, seed=args.seed,
        create=not args.no_create,
    )
    for table, count in counts.items():
        print(f"{table:<18} {count:>12,}")
    elapsed = time.monotonic() - started
    print(f"{'total':<18} {sum(counts.values()):>12,}  ({elapsed:.1f}s, {target.describe()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
