"""The portal's interface text in Korean (the default) and English."""
from __future__ import annotations

LANGS = ("ko", "en")

TEXT: dict[str, dict[str, str]] = {
    "site": {"ko": "고양시 공공데이터 포털", "en": "Goyang Open Data Portal"},
    "skip": {"ko": "본문 바로가기", "en": "Skip to content"},
    "home": {"ko": "홈", "en": "Home"},
    "catalogue": {"ko": "데이터 목록", "en": "Datasets"},
    "api": {"ko": "API 문서", "en": "API docs"},
    "feeds": {"ko": "알림 피드", "en": "Alerts feed"},
    "switch": {"ko": "English", "en": "한국어"},
    "air_now": {"ko": "지금 대기질", "en": "Air quality now"},
    "air_now_note": {"ko": "측정소별 최신 통합대기환경지수(CAI) 등급. 기준 시각은 각 측정소의 마지막 측정 시간입니다.",
                     "en": "Latest Korean integrated air quality index (CAI) grade per station, at each "
                           "station's last measured hour."},
    "map_label": {"ko": "고양시 구 경계와 측정소별 대기질 등급 지도. 같은 내용이 아래 표에 있습니다.",
                  "en": "Map of Goyang's districts and the air quality grade of each station. The table "
                        "below has the same content."},
    "legend": {"ko": "범례", "en": "Legend"},
    "no_grade": {"ko": "등급 없음", "en": "No grade"},
    "station": {"ko": "측정소", "en": "Station"},
    "district": {"ko": "구", "en": "District"},
    "time": {"ko": "시각(KST)", "en": "Time (KST)"},
    "grade": {"ko": "등급", "en": "Grade"},
    "districts": {"ko": "구별 현황", "en": "Districts"},
    "alerts": {"ko": "최근 알림", "en": "Latest alerts"},
    "no_alerts": {"ko": "최근 알림이 없습니다.", "en": "No recent alerts."},
    "release": {"ko": "릴리스", "en": "Release"},
    "as_of": {"ko": "기준일", "en": "As of"},
    "search": {"ko": "검색", "en": "Search"},
    "search_placeholder": {"ko": "제목, 설명, 키워드", "en": "Title, description, keyword"},
    "all": {"ko": "전체", "en": "All"},
    "licence": {"ko": "이용허락", "en": "Licence"},
    "frequency": {"ko": "갱신 주기", "en": "Update frequency"},
    "rows": {"ko": "행 수", "en": "Rows"},
    "version": {"ko": "버전", "en": "Version"},
    "shown": {"ko": "개 데이터셋", "en": " datasets"},
    "keywords": {"ko": "키워드", "en": "Keywords"},
    "coverage": {"ko": "기간", "en": "Temporal coverage"},
    "schema": {"ko": "스키마", "en": "Schema"},
    "column": {"ko": "열", "en": "Column"},
    "type": {"ko": "형식", "en": "Type"},
    "unit": {"ko": "단위", "en": "Unit"},
    "description": {"ko": "설명", "en": "Description"},
    "preview": {"ko": "미리보기", "en": "Preview"},
    "preview_note": {"ko": "처음 {n}행", "en": "First {n} rows"},
    "chart": {"ko": "시계열 차트", "en": "Time series chart"},
    "chart_note": {"ko": "차트는 브라우저가 공개 Parquet 파일을 HTTP Range 요청으로 직접 읽어 그립니다.",
                   "en": "The chart is drawn by your browser reading the published Parquet file "
                         "directly with HTTP Range requests."},
    "chart_needs_js": {"ko": "차트를 보려면 자바스크립트가 필요합니다. 아래에서 파일을 내려받을 수 있습니다.",
                       "en": "The chart needs JavaScript. The files can be downloaded below."},
    "metric": {"ko": "항목", "en": "Metric"},
    "downloads": {"ko": "내려받기", "en": "Downloads"},
    "format": {"ko": "형식", "en": "Format"},
    "period": {"ko": "기간", "en": "Period"},
    "whole": {"ko": "전체", "en": "Everything"},
    "size": {"ko": "크기", "en": "Size"},
    "checksum": {"ko": "SHA-256", "en": "SHA-256"},
    "file": {"ko": "파일", "en": "File"},
    "use": {"ko": "API와 DuckDB로 쓰기", "en": "Use it with the API and DuckDB"},
    "quality": {"ko": "품질 검증 보고서", "en": "Data quality report"},
    "metadata": {"ko": "메타데이터", "en": "Metadata"},
    "versions": {"ko": "버전과 변경 내역", "en": "Versions and changes"},
    "added": {"ko": "추가", "en": "added"},
    "changed": {"ko": "변경", "en": "changed"},
    "removed": {"ko": "삭제", "en": "removed"},
    "no_changes": {"ko": "이 릴리스에서 바뀐 행이 없습니다.", "en": "No rows changed in this release."},
    "sources": {"ko": "출처", "en": "Sources"},
    "footer": {"ko": "이 사이트의 데이터는 각 데이터셋에 표시된 이용허락 조건에 따라 이용할 수 있습니다.",
               "en": "The data on this site may be used under the licence shown on each dataset."},
}

FREQUENCY = {
    "hourly": {"ko": "매시간", "en": "Hourly"}, "daily": {"ko": "매일", "en": "Daily"},
    "event": {"ko": "수시(사건)", "en": "Event"}, "irregular": {"ko": "수시", "en": "Irregular"},
    "monthly": {"ko": "매월", "en": "Monthly"},
}


def t(key: str, lang: str) -> str:
    return TEXT[key][lang]


def frequency(value: str | None, lang: str) -> str:
    return FREQUENCY.get(value or "", {}).get(lang, value or "")
