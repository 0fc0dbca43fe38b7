"""Write the sample knowledge base in examples/docs/ (run once; the outputs are committed).

    python examples/make_docs.py
"""

from __future__ import annotations

from pathlib import Path

import docx
import pymupdf

OUT = Path(__file__).resolve().parent / "docs"

HANDBOOK = [  # one string a page
    "星河科技员工手册\n\n第一章 公司简介\n\n星河科技有限公司成立于2015年，总部位于杭州市西湖区，"
    "主要从事智能净水设备的研发与销售。公司现有员工约三百人，在上海和成都设有分公司。\n\n"
    "第二章 工作时间\n\n公司实行标准工时制，工作时间为周一至周五上午九点至下午六点，午休一小时。"
    "员工因工作需要加班的，须事先在办公系统中提交加班申请，经部门负责人批准。",
    "第三章 假期\n\n员工入职满一年后，每年享有十天带薪年假；工作满五年后，带薪年假增加到十五天。"
    "年假须至少提前两周在办公系统中申请。当年未休完的年假可以顺延到次年第一季度，逾期作废。\n\n"
    "员工结婚可享受三天婚假，子女出生时男员工可享受十五天陪产假。",
    "第四章 培训与晋升\n\n新员工入职后参加为期五天的入职培训。公司每年四月和十月进行两次晋升评审，"
    "评审结果在评审结束后十个工作日内公布。\n\n第五章 联系方式\n\n人力资源部邮箱为 hr@xinghe.example，"
    "内线电话 8021。",
]

MANUAL = [
    "Aurora X2 Water Purifier - User Manual\n\n1. Overview\n\nThe Aurora X2 is a reverse-osmosis water purifier "
    "made by Xinghe Technology. It delivers up to 2 litres of purified water per minute and removes more than "
    "99 percent of lead, chlorine and bacteria.\n\n2. Installation\n\nInstall the purifier under the sink, "
    "connected to the cold water supply. The inlet water pressure must be between 0.1 and 0.4 MPa. "
    "Do not connect it to a hot water pipe.",
    "3. Maintenance\n\nReplace the PP cotton filter every 6 months and the RO membrane every 24 months. "
    "The filter indicator on the front panel turns red when a filter is due for replacement.\n\n"
    "4. Warranty\n\nThe Aurora X2 comes with a 3-year warranty on the main unit. Filters are consumables "
    "and are not covered by the warranty. To claim the warranty, call the service line 400-820-1234.",
]


def write_pdf(path: Path, pages: list[str], font: str) -> None:
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=595, height=842)  # A4
        rect = pymupdf.Rect(60, 60, 535, 800)
        left = page.insert_textbox(rect, text, fontsize=12, fontname=font, lineheight=1.5)
        if left < 0:
            raise SystemExit(f"text does not fit on a page of {path.name}")
    doc.set_metadata({"title": path.stem, "creator": "kbqa examples/make_docs.py"})
    doc.save(path, garbage=4, deflate=True)


def write_docx(path: Path) -> None:
    d = docx.Document()
    d.add_heading("差旅报销制度", level=1)
    d.add_paragraph("本制度适用于星河科技全体员工的国内出差费用报销。")
    d.add_heading("报销时限", level=2)
    d.add_paragraph("出差结束后三十天内须在财务系统中提交报销申请，超过期限的费用不予报销。")
    d.add_heading("住宿标准", level=2)
    d.add_paragraph("住宿费按城市分级报销，每晚上限如下表：")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "城市"
    table.rows[0].cells[1].text = "每晚上限（元）"
    for city, limit in [("北京、上海", "600"), ("杭州、成都", "450"), ("其他城市", "350")]:
        row = table.add_row()
        row.cells[0].text = city
        row.cells[1].text = limit
    d.add_heading("交通", level=2)
    d.add_paragraph("出差优先乘坐高铁二等座；飞机经济舱须经部门负责人批准。")
    d.save(path)


FAQ = """# Aurora X2 常见问题 FAQ

## 净水器出水变慢怎么办？

多半是 PP 棉滤芯堵塞。请检查前面板的滤芯指示灯，如果变红，按手册更换滤芯。

## How do I reset the filter indicator?

After replacing a filter, hold the RESET button on the front panel for 5 seconds until the indicator turns blue.

## 可以安装在哪里？

建议安装在厨房水槽下方，环境温度须在 4 到 40 摄氏度之间，避免阳光直射。
"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_pdf(OUT / "员工手册.pdf", HANDBOOK, "china-s")
    write_pdf(OUT / "aurora_x2_manual.pdf", MANUAL, "helv")
    write_docx(OUT / "差旅报销制度.docx")
    (OUT / "faq.md").write_text(FAQ, encoding="utf-8")
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
