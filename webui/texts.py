"""Every text the web app shows, in English and Chinese, in one place. The language follows the
browser (Accept-Language zh* → Chinese) until the user picks one with the switch."""

from __future__ import annotations

import re
from typing import Any

LANGUAGES = {"en": "English", "zh": "中文"}

TEXTS: dict[str, dict[str, str]] = {
    # page and tabs
    "intro": {
        "en": "## kbqa — ask your documents\nAnswers come from your own files, with the file and page of each source. Nothing leaves this machine.",
        "zh": "## kbqa — 向你的文档提问\n答案来自你自己的文件，并注明每条来源的文件和页码。数据不会离开这台机器。",
    },
    "language": {"en": "Language", "zh": "语言"},
    "kb": {"en": "Knowledge base", "zh": "知识库"},
    "llm": {"en": "LLM", "zh": "大模型"},
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_kbs": {"en": "Knowledge bases", "zh": "知识库管理"},
    "tab_settings": {"en": "Models and settings", "zh": "模型与设置"},
    # chat
    "chat": {"en": "Chat", "zh": "对话"},
    "question": {"en": "Ask a question about your documents…", "zh": "就你的文档提一个问题…"},
    "ask": {"en": "Ask", "zh": "提问"},
    "clear": {"en": "Clear history", "zh": "清空对话"},
    "source_pages_files": {"en": "Source pages and files", "zh": "来源页面与文件"},
    "source_pages": {"en": "Source pages (the cited passage outlined)", "zh": "来源页面（引用的段落已框出）"},
    "source_files": {"en": "Source files", "zh": "来源文件"},
    "pick_answer": {"en": "Click an answer to see its own sources.", "zh": "点击某条回答，可查看它自己的来源。"},
    # settings
    "settings_intro": {
        "en": "Your settings for this session, and what this knowledge base runs on: embedder, LLM (loaded on the first question), OCR, vector store, and this process's memory.",
        "zh": "本次会话的设置，以及知识库所用的组件：向量模型、大模型（首次提问时加载）、OCR、向量库和本进程的内存。",
    },
    "top_k": {"en": "Sources (top-k)", "zh": "来源数（top-k）"},
    "threshold": {"en": "Relevance threshold (0..1, higher = stricter)", "zh": "相关度阈值（0..1，越高越严格）"},
    "temperature": {"en": "Temperature (0 = always the same answer)", "zh": "温度（0 = 每次答案相同）"},
    "answer_confidence": {
        "en": "Answer confidence (0..1; empty = the model's own cut; lower answers more, and more wrongly)",
        "zh": "作答置信度（0..1；留空 = 模型自身的界限；越低答得越多，也越容易答错）",
    },
    "facts": {"en": "What it runs on", "zh": "运行组件"},
    "llm_missing_title": {"en": "Models not on this machine", "zh": "本机未安装的模型"},
    "llm_missing": {
        "en": "kbqa never downloads a model unless `llm.allow_download: true` is set. To use one of these, get it as shown "
              "(a `.gguf` file: download it and set `llm.path` to where you saved it), then restart kbqa.",
        "zh": "除非设置了 `llm.allow_download: true`，kbqa 不会下载任何模型。要使用下列模型，请按所示方法获取"
              "（`.gguf` 文件：下载后把 `llm.path` 设为它的保存位置），然后重启 kbqa。",
    },
    "refresh": {"en": "Refresh", "zh": "刷新"},
    # knowledge bases
    "new_kb": {"en": "New knowledge base", "zh": "新建知识库"},
    "new_kb_hint": {"en": "letters, digits, - _ . or Chinese", "zh": "字母、数字、- _ . 或中文"},
    "create": {"en": "Create", "zh": "创建"},
    "uploads": {"en": "Upload files or .zip archives to ingest", "zh": "上传要导入的文件或 .zip 压缩包"},
    "folder_upload": {"en": "…or a whole folder", "zh": "…或整个文件夹"},
    "ingest": {"en": "Ingest", "zh": "导入"},
    "file_id": {"en": "File id or name", "zh": "文件编号或名称"},
    "reingest": {"en": "Re-ingest file", "zh": "重新导入文件"},
    "delete_file": {"en": "Delete file", "zh": "删除文件"},
    "search": {"en": "Search only (retrieved chunks, no LLM)", "zh": "仅检索（显示检索到的片段，不调用大模型）"},
    "drop_section": {"en": "Delete this knowledge base", "zh": "删除此知识库"},
    "confirm": {"en": "Type the knowledge base's name to confirm", "zh": "输入知识库名称以确认"},
    "drop": {"en": "Delete knowledge base", "zh": "删除知识库"},
    "headers": {"en": "id|file|status|pages|chunks|seconds|description|error / warning", "zh": "编号|文件|状态|页数|片段数|秒|文档描述|错误 / 警告"},
    # messages
    "sources": {"en": "Sources", "zh": "来源"},
    "relevance": {"en": "relevance", "zh": "相关度"},
    "searched_for": {"en": "Searched for:", "zh": "检索的是："},
    "no_source": {
        "en": "**No source passed the relevance threshold** — the documents do not seem to hold this; the LLM was not called.",
        "zh": "**没有来源达到相关度阈值** —— 文档中似乎没有这个答案；未调用大模型。",
    },
    "related": {
        "en": "**Related passages — not an answer.** The documents do not seem to hold the answer; these are the closest passages (the LLM was not called).",
        "zh": "**相关资料 —— 并非答案。** 文档中似乎没有这个答案；以下是最接近的资料（未调用大模型）。",
    },
    "no_chunk": {"en": "No chunk passed the relevance threshold.", "zh": "没有片段达到相关度阈值。"},
    "waiting": {"en": "⏳ Waiting for the LLM: {ahead} more question(s) wait before yours…", "zh": "⏳ 正在排队等待大模型：前面还有 {ahead} 个问题在排队…"},
    "waiting_next": {"en": "⏳ Waiting for the LLM to finish another answer: yours is next…", "zh": "⏳ 大模型正在回答别的问题，下一个就是您的…"},
    "created": {"en": "Created knowledge base **{name}**. Upload files to fill it.", "zh": "已创建知识库 **{name}**。请上传文件。"},
    "kb_exists": {"en": "Knowledge base **{name}** already exists: it is selected.", "zh": "知识库 **{name}** 已存在，已为你选中。"},
    "choose_kb": {"en": "Choose a knowledge base first.", "zh": "请先选择一个知识库。"},
    "confirm_first": {"en": "Type the name **{name}** in the confirmation box to delete it.", "zh": "请在确认框中输入名称 **{name}** 后再删除。"},
    "deleted_kb": {"en": "Deleted knowledge base **{name}** and its files.", "zh": "已删除知识库 **{name}** 及其文件。"},
    "choose_files": {"en": "Choose files, a zip or a folder to upload first.", "zh": "请先选择要上传的文件、压缩包或文件夹。"},
    "nothing_ingested": {"en": "nothing ingested", "zh": "没有导入任何文件"},
    "removed": {"en": "Removed {name}.", "zh": "已删除 {name}。"},
    "reingested": {"en": "Re-ingested: {summary}", "zh": "已重新导入：{summary}"},
    "ingest_held": {"en": "Waiting: another ingest of this knowledge base is reading {files} of these files…",
                    "zh": "正在等待：此知识库的另一个导入正在读取其中 {files} 个文件……"},
    "ingest_waiting": {"en": "Waiting for {running} other upload(s) to finish ingesting…", "zh": "正在等待其他 {running} 个上传导入完成……"},
    "page_progress": {"en": "{name}, page {page} of {pages} ({done}/{total})", "zh": "{name}，第 {page}/{pages} 页（{done}/{total}）"},
    # a file's status in the files table
    "status_ok": {"en": "ok", "zh": "正常"},
    "status_failed": {"en": "failed", "zh": "失败"},
    "status_unsupported": {"en": "unsupported", "zh": "不支持"},
    # an ingest's summary
    "added": {"en": "{n} added", "zh": "新增 {n} 个"},
    "updated": {"en": "{n} updated", "zh": "更新 {n} 个"},
    "moved": {"en": "{n} moved", "zh": "移动 {n} 个（内容未变）"},
    "skipped": {"en": "{n} skipped", "zh": "跳过 {n} 个（未改变）"},
    "removed_n": {"en": "{n} removed", "zh": "移除 {n} 个"},
    "failed": {"en": "{n} failed", "zh": "失败 {n} 个"},
    "unsupported": {"en": "{n} unsupported", "zh": "不支持 {n} 个"},
    "nothing_to_do": {"en": "nothing to do", "zh": "没有需要处理的文件"},
    "chunks_in": {"en": "{chunks} new chunks in {seconds:.1f} s", "zh": "新增 {chunks} 个片段，用时 {seconds:.1f} 秒"},
    "chunk_in": {"en": "1 new chunk in {seconds:.1f} s", "zh": "新增 1 个片段，用时 {seconds:.1f} 秒"},
    "interrupted": {"en": " (interrupted)", "zh": "（已中断）"},
    # what the service refused, by its code
    "err_invalid_name": {"en": "Invalid knowledge base name: use letters, digits, Chinese, '-', '_' or '.' (not first), at most 64 characters (255 bytes of UTF-8).",
                         "zh": "知识库名称无效：请使用字母、数字、中文、'-'、'_' 或 '.'（不能开头），最多 64 个字符（UTF-8 255 字节）。"},
    "err_lookalike_name": {"en": "The name **{name}** mixes letters of scripts that look alike (Latin 'o', Cyrillic 'о'), so it could pass for another knowledge base's: write it in one script.",
                           "zh": "名称 **{name}** 混用了外形相同的不同文字的字母（拉丁字母 'o' 与西里尔字母 'о'），可能被误认作另一个知识库：请只用一种文字。"},
    "err_kb_busy": {"en": "Another request (an upload, a re-ingest or a delete) is changing **{name}** now: try again once it has finished.",
                    "zh": "另一个请求（上传、重新导入或删除）正在修改 **{name}**：请在完成后重试。"},
    "err_ambiguous_file": {"en": "Several files are called **{name}** (ids {ids}): give the id of the one you mean.",
                           "zh": "有多个文件名为 **{name}**（编号 {ids}）：请填写要操作的文件编号。"},
    "err_id_or_name": {"en": "**{name}** is the id of one file and the name of another: give **id:{name}** for the file of id {name}, or {others} for the other.",
                       "zh": "**{name}** 既是一个文件的编号，又是另一个文件的名称：要操作编号为 {name} 的文件请填写 **id:{name}**，要操作另一个请填写 {others}。"},
    "err_no_kb": {"en": "There is no knowledge base **{name}**: create it, or upload files into it.", "zh": "没有名为 **{name}** 的知识库：请先创建，或向它上传文件。"},
    "err_client_gone": {"en": "The browser tab was closed while the upload waited for its turn.", "zh": "上传在排队等待时浏览器标签页已关闭。"},
    "err_kb_deleted": {"en": "The knowledge base **{name}** was deleted meanwhile.", "zh": "知识库 **{name}** 已在此期间被删除。"},
    "err_empty": {"en": "The question is empty.", "zh": "问题是空的。"},
    "err_too_long": {"en": "The question has {chars} characters; the limit is {limit}.", "zh": "问题有 {chars} 个字符，上限是 {limit}。"},
    "err_too_many_tokens": {"en": "The question is {tokens} tokens long; the model reads questions of up to {limit}: ask a shorter one.",
                            "zh": "问题有 {tokens} 个词元，模型一次最多读 {limit} 个：请把问题缩短。"},
    "err_not_here": {"en": "The LLM {model} is not on this machine; available: {offers}.", "zh": "本机没有大模型 {model}；可用的有：{offers}。"},
    "err_llm_missing": {"en": "The LLM **{model}** is not on this machine, and kbqa does not download models (llm.allow_download is off). "
                              "Get it with: {get} — or choose an installed one: {installed}.",
                        "zh": "本机没有大模型 **{model}**，kbqa 也不会自动下载模型（llm.allow_download 未开启）。获取方法：{get}；或选择已安装的模型：{installed}。"},
    "err_llm_unknown": {"en": "There is no LLM **{model}**: it is not in the model catalog, not a local path, and kbqa does not download models. "
                              "Installed: {installed}.",
                        "zh": "没有大模型 **{model}**：它不在模型目录中，也不是本地路径，而 kbqa 不会自动下载模型。已安装的模型：{installed}。"},
    "err_llm_load_failed": {"en": "The LLM **{model}** could not be loaded: {reason}. Choose another one and ask again.",
                            "zh": "大模型 **{model}** 加载失败：{reason}。请选择其他模型后重新提问。"},
    "err_embeddings_missing": {"en": "The embedding model **{model}** is not on this machine, and kbqa does not download models "
                                     "(llm.allow_download is off). Get it with: {get} — or set embeddings.model to an installed one: {installed}.",
                               "zh": "本机没有向量模型 **{model}**，kbqa 也不会自动下载模型（llm.allow_download 未开启）。获取方法：{get}；"
                                     "或把 embeddings.model 设为已安装的模型：{installed}。"},
    "err_embeddings_unknown": {"en": "There is no embedding model **{model}**: it is not in the model catalog, not a local path, and kbqa does not "
                                     "download models. Installed: {installed}.",
                               "zh": "没有向量模型 **{model}**：它不在模型目录中，也不是本地路径，而 kbqa 不会自动下载模型。已安装的向量模型：{installed}。"},
    "err_embeddings_load_failed": {"en": "The embedding model **{model}** could not be loaded: {reason}.",
                                   "zh": "向量模型 **{model}** 加载失败：{reason}。"},
    "err_reranker_unknown": {"en": "The reranker **{model}** is not on this machine, and kbqa does not download models: "
                                   "give retrieval.reranker a local folder.",
                             "zh": "本机没有重排序模型 **{model}**，kbqa 也不会自动下载模型：请把 retrieval.reranker 设为本地文件夹。"},
    "err_full": {"en": "The LLM is busy and the queue is full; try again in {seconds:.0f} s.", "zh": "大模型正忙且排队已满，请约 {seconds:.0f} 秒后再试。"},
    "err_waited": {"en": "Waited {seconds} s for the LLM; try again later.", "zh": "已等待大模型 {seconds} 秒，请稍后再试。"},
    "err_ingests_full": {"en": "{running} uploads are being ingested and {waiting} wait for their turn; try again later.",
                         "zh": "正在导入 {running} 个上传，另有 {waiting} 个在排队，请稍后再试。"},
    "err_ingest_waited": {"en": "Waited {seconds} s for other uploads to finish ingesting; try again later.",
                          "zh": "已等待其他上传导入 {seconds} 秒，请稍后再试。"},
    "err_stopping": {"en": "The server is shutting down.", "zh": "服务器正在关闭。"},
    "err_disk_full": {"en": "The server's disk filled up while the files were ingested: those not ingested yet were not kept. Free some space on "
                            "the server, then upload them again.", "zh": "导入时服务器磁盘已满：尚未导入的文件没有保留。请先在服务器上腾出空间，再重新上传。"},
    "err_stopping_kept": {"en": "The server is shutting down: {kept} of {files} files were ingested and kept; upload the rest again once it is back.",
                          "zh": "服务器正在关闭：{files} 个文件中已导入并保留 {kept} 个；服务器恢复后请重新上传其余文件。"},
    # error kinds (the service's own message follows)
    "BadRequest": {"en": "Not possible", "zh": "无法完成"},
    "NotFound": {"en": "Not found", "zh": "找不到"},
    "TooLarge": {"en": "Too large", "zh": "太大"},
    "Busy": {"en": "Busy", "zh": "繁忙"},
    "Conflict": {"en": "Changed meanwhile", "zh": "已被修改"},
    "ServiceError": {"en": "Error", "zh": "错误"},
}


def language(accept_language: str | None) -> str:
    """'zh' when the browser's first language is Chinese, else 'en'."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def t(lang: str, key: str, **values: Any) -> str:
    text = TEXTS[key].get(lang) or TEXTS[key]["en"]
    return text.format(**values) if values else text


def summary(report: Any, lang: str) -> str:
    """An ingest report's one-line summary (IngestReport.summary()) in the page's language."""
    keys = {"added": "added", "updated": "updated", "moved": "moved", "skipped": "skipped", "removed": "removed_n", "failed": "failed", "unsupported": "unsupported"}
    parts = [t(lang, key, n=report.count(status)) for status, key in keys.items() if report.count(status)]
    chunks = sum(f.chunks for f in report.files if f.status in ("added", "updated"))
    joined = ("，" if lang == "zh" else ", ").join(parts) or t(lang, "nothing_to_do")
    return f"{joined}{'；' if lang == 'zh' else '; '}{t(lang, 'chunk_in' if chunks == 1 else 'chunks_in', chunks=chunks, seconds=report.seconds)}" + (
        t(lang, "interrupted") if report.interrupted else "")


# Why a file was not ingested or stored (ingest's and the upload check's reasons), in Chinese; the
# details after the reason (an exception, a number) stay as they are.
_FILE_ERRORS_ZH: list[tuple[str, str]] = [
    (r"empty file", "空文件"),
    (r"the same content as (.+), already in this knowledge base: not stored again", r"与知识库中已有的 \1 内容相同，未重复保存"),
    (r"a hidden file \(its name begins with '\.'\), not stored", "隐藏文件（文件名以“.”开头），未保存"),
    (r"no text found in file", "文件中没有找到文字"),
    (r"PDF has no pages", "PDF 没有页面"),
    (r"damaged PDF: MuPDF had to repair it to read it, and part of its text may be missing \(a download cut short\?\); ingest a good copy",
     "PDF 已损坏：MuPDF 修复后才能读取，部分文字可能缺失（下载不完整？）；请上传完好的文件"),
    (r"encrypted PDF: remove the password first \(e\.g\. qpdf --decrypt\)", "PDF 已加密：请先去掉密码（例如 qpdf --decrypt）"),
    (r"binary content, not text \(mislabelled file\?\)", "是二进制内容而不是文本（扩展名不对？）"),
    (r"unsupported file type (.+): unpack it first \(the web chat and the API unpack an uploaded \.zip\)",
     r"不支持的文件类型 \1：请先解压（网页聊天和 API 会自动解压上传的 .zip）"),
    (r"unsupported file type (.+)", r"不支持的文件类型 \1"),
    (r"a (\w+) image named (.+), and OCR found no text in it", r"这是一张被命名为 \2 的 \1 图片，OCR 没有识别出文字"),
    (r"a (\w+) image named (.+): read as an image, by OCR", r"这是一张被命名为 \2 的 \1 图片：已按图片用 OCR 识别"),
    (r"corrupt or unreadable (\w+): (.*)", r"\1 文件已损坏或无法读取：\2"),
    (r"corrupt (\w+): (.*)", r"\1 文件已损坏：\2"),
    (r"not a valid (\w+) file \((.*)\)", r"不是有效的 \1 文件（\2）"),
    (r"not a Word document .*", "不是 Word 文档"),
    (r"cannot parse (\w+) file: (.*)", r"无法解析 \1 文件：\2"),
    (r"cannot read file: (.*)", r"无法读取文件：\1"),
    (r"not a readable image: (.*)", r"无法读取的图片：\1"),
    (r"image skipped: ocr is set to 'never'", "已跳过图片：ingest.ocr 设为 never"),
    (r"file too large to read in memory", "文件太大，无法读入内存"),
    (r"file is (\d+) MB, over the limit of (.*)", r"文件有 \1 MB，超过上限 \2"),
    (r"timed out after ([\d.]+) s \(ingest\.file_timeout_s\); the file was skipped", r"读取超过 \1 秒（ingest.file_timeout_s），已跳过该文件"),
    (r"the parser crashed on this file \(exit code (.*?)\) after ([\d.]+) s \(under ingest\.max_reader_memory_mb=([\d.]+): if it ran out of memory, "
     r"raise it to read this file\)", r"解析器在此文件上崩溃（退出码 \1，\2 秒后；内存上限 ingest.max_reader_memory_mb=\3：如果是内存不够，调高它再读这个文件）"),
    (r"the parser crashed on this file \(exit code (.*)\) after ([\d.]+) s", r"解析器在此文件上崩溃（退出码 \1，\2 秒后）"),
    (r"over the upload limit of (\d+) MB", r"超过上传上限 \1 MB"),
    (r"over what one request may store", "超过单次请求可存储的大小"),
    (r"a symbolic link, not extracted", "是符号链接，未解压"),
    (r"a member without a name, not extracted", "压缩包中有一个没有名字的文件，未解压"),
    (r"a path outside the archive's folder, not extracted", "路径在压缩包目录之外，未解压"),
    (r"not a readable zip archive \((.*)\)", r"不是可读取的 zip 压缩包（\1）"),
    (r"the archive unpacks to more than (\d+) MB; the rest were not extracted", r"压缩包解压后超过 \1 MB，其余文件未解压"),
    (r"more than (\d+) files; the rest were not extracted", r"超过 \1 个文件，其余文件未解压"),
    (r"one upload stores at most (\d+) files of new content \(server\.max_upload_files\); upload the rest in another",
     r"一次上传最多保存 \1 个新内容的文件（server.max_upload_files）；其余文件请另行上传"),
    (r"cannot be stored \((.*)\)", r"无法保存（\1）"),
    (r"not a file uploaded to this page", "不是上传到本页的文件"),
    (r"the server's disk is nearly full \(([\d,]+) MB free, under server\.min_free_disk_mb = ([\d.]+) MB\): nothing more is stored; "
     r"free some space on the server, then upload again", r"服务器磁盘快满了（剩余 \1 MB，低于 server.min_free_disk_mb = \2 MB）：不再保存文件；请先在服务器上腾出空间，再重新上传"),
    (r"the server's disk is nearly full \(([\d,]+) MB free; ingesting them takes up to ([\d,]+) MB, which would leave less than "
     r"server\.min_free_disk_mb = ([\d.]+) MB\): nothing more is stored; free some space on the server, then upload again",
     r"服务器磁盘快满了（剩余 \1 MB；导入这些文件最多要写 \2 MB，之后将低于 server.min_free_disk_mb = \3 MB）：不再保存文件；请先在服务器上腾出空间，再重新上传"),
]
# a reason's first words that say what was not done, before the reason itself (said in turn)
_FILE_ERROR_PREFIXES_ZH = {"not stored: ": "未保存：", "not ingested: ": "未导入：", "not extracted, nor the rest: ": "未解压，其余文件也未解压："}


def file_error(reason: str, lang: str) -> str:
    """A file's error, said in the page's language where the reason is a known one."""
    if lang != "zh":
        return reason
    for prefix, zh in _FILE_ERROR_PREFIXES_ZH.items():
        if reason.startswith(prefix):
            return zh + file_error(reason[len(prefix):], lang)
    for pattern, zh in _FILE_ERRORS_ZH:
        m = re.fullmatch(pattern, reason, re.S)
        if m:
            return m.expand(zh)
    return reason
